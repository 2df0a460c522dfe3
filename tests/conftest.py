"""Session fixtures shared across test folders: trained models that several tests read but none writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs one worker per core) each worker gets one intra-op thread:
    oversubscribed OpenMP threads spin rather than share."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest test files first, so that under `--dist loadfile` (and `--no-loadscope-reorder`) the file
    that trains for ten minutes starts at once and the short ones fill the other workers around it,
    rather than starting last and setting the suite's wall time alone. A file weighs the minutes its
    slow tests state (`@pytest.mark.slow(minutes=8)`; a bare `slow` counts one); the sort is stable."""
    minutes: dict[Path, float] = {}
    for item in items:
        marker = item.get_closest_marker("slow")
        cost = 0.0 if marker is None else float(marker.kwargs.get("minutes", 1))
        minutes[item.path] = minutes.get(item.path, 0.0) + cost
    items.sort(key=lambda item: -minutes[item.path])


@pytest.fixture(scope="session")
def shapes_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLIP trained on the shapes world with the packaged 'tiny' preset: the run directory.

    Trained once per session on one thread (the machine's cores are shared, and oversubscribed OpenMP
    threads spin): 900 steps, 2 to 3 minutes. Its 48-pixel images are cut into 16-pixel patches, one
    token per cell of the shapes grid, so an object's place is which patch token holds it; its captions
    name the colour, shape, size and place of every object. The VLM tests use it as their vision tower.
    Read-only.
    """
    from alltokens.train.recipes.clip import train_clip

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_clip("shapes", tmp_path_factory.mktemp("shapes-clip") / "run", preset="tiny", seed=0)
    finally:
        torch.set_num_threads(before)
