"""Session fixtures shared across test folders: trained models that several tests read but none writes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs one worker per core) each worker gets one intra-op thread:
    oversubscribed OpenMP threads spin rather than share."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.hookimpl(trylast=True)  # after `-m` has deselected what will not run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest test files first, so that under `--dist loadfile` (and `--no-loadscope-reorder`) the file
    that trains for ten minutes starts at once and the short ones fill the other workers around it,
    rather than starting last and setting the suite's wall time alone. A file weighs the minutes its
    slow tests state (`@pytest.mark.slow(minutes=8)`; a bare `slow` counts one); the sort is stable.

    xdist starts each of its n workers with two files, the first n files and then the next n, and a
    worker runs its second only after its first: so the n shortest files come right after the n longest,
    and no long file waits behind the longest one."""
    minutes: dict[Path, float] = {}
    for item in items:
        marker = item.get_closest_marker("slow")
        cost = 0.0 if marker is None else float(marker.kwargs.get("minutes", 1))
        minutes[item.path] = minutes.get(item.path, 0.0) + cost
    files = sorted(minutes, key=lambda path: -minutes[path])
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and len(files) > 2 * workers:
        files = files[:workers] + files[: -workers - 1 : -1] + files[workers:-workers]
    rank = {path: n for n, path in enumerate(files)}
    items.sort(key=lambda item: rank[item.path])


def trained_once(factory: pytest.TempPathFactory, name: str, train: Callable[[Path], Path]) -> Path:
    """`train(directory)`'s run directory, trained once per test session however many xdist workers ask.

    A session fixture is per worker, so each worker whose files use one (the shapes CLIP serves four
    files) would train it again; here the first to ask trains under a file lock in the session's shared
    temporary folder, and the others wait for it and read its run. Trained on one thread: the machine's
    cores are shared, and oversubscribed OpenMP threads spin. Runs are read-only to the tests."""
    from filelock import FileLock

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    root = factory.getbasetemp().parent if worker else factory.getbasetemp()
    done = root / f"{name}.done"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():  # a worker whose training failed leaves no mark: the next one tries again
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                run = train(root / f"{name}-{worker or 'main'}")
            finally:
                torch.set_num_threads(before)
            done.write_text(str(run))
    return Path(done.read_text())


@pytest.fixture(scope="session")
def shapes_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLIP trained on the shapes world with the packaged 'tiny' preset: the run directory.

    900 steps, 2 to 3 minutes. Its 48-pixel images are cut into 16-pixel patches, one token per cell of
    the shapes grid, so an object's place is which patch token holds it; its captions name the colour,
    shape, size and place of every object. Read-only.
    """
    from alltokens.train.recipes.clip import train_clip

    return trained_once(
        tmp_path_factory, "shapes-clip", lambda out: train_clip("shapes", out, preset="tiny", seed=0)
    )


@pytest.fixture(scope="session")
def towers(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], tuple[Path, Path]]:
    """seed -> the run directories of the 'tiny-colour-96' CLIP (each patch's two colours, no outline)
    and the 'tiny-shape-96' CLIP (each patch's normalised outline, no colour), each trained once per
    session with that seed: the two vision towers of the 'tiny-long' VLM. About 4 and 2 minutes on one
    core; the colour tower is trained first. Read-only."""
    from alltokens.train.recipes.clip import train_clip

    def get(seed: int) -> tuple[Path, Path]:
        return tuple(
            trained_once(
                tmp_path_factory,
                f"{preset}-seed{seed}",
                lambda out, preset=preset: train_clip("shapes", out, preset=preset, seed=seed),
            )
            for preset in ("tiny-colour-96", "tiny-shape-96")
        )

    return get
