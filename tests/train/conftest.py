"""Fixtures of the training tests: one thread per process, a small repetitive text file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from .tiny import REPETITIVE


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the machine's cores are shared, and oversubscribed OpenMP threads spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    """A few KB of highly repetitive text: a tiny model learns it within a few dozen steps."""
    path = tmp_path / "text.txt"
    lines = [f"{i % 7} {REPETITIVE}" for i in range(120)]
    path.write_text("".join(lines))
    return path
