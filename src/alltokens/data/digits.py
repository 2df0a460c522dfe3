"""Real scans with no network: scikit-learn's 1,797 handwritten digits (8x8, values 0..16), upscaled.

The held-out test split is a fixed stratified 20% of each class. Which scans go to test is decided by a
BLAKE2 hash of each scan's index, not by a random generator, so it is the same on every machine and
every version of numpy and scikit-learn: 1,438 train and 359 test images.

Images are drawn as dark ink on a light background (value 0 -> white, 16 -> black), like a scan of
paper, upscaled bicubically from 8x8 to `size` x `size` and returned as RGB, so a model built for the
shapes images takes them unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import random

import numpy as np
from PIL import Image

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_FRACTION = 0.2
SPLITS = ("train", "test")
CAPTIONS = (
    "a handwritten {d}",
    "the digit {name}",
    "a photo of the number {d}",
    "a handwritten digit {name}",
    "the number {name}",
    "a scan of a handwritten {d}",
)


@functools.cache
def scans() -> tuple[np.ndarray, np.ndarray, frozenset[int]]:
    """(images (N, 8, 8) uint8 ink 0..16, labels (N,), indices of the test split); read once."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    test: set[int] = set()
    for label in range(10):
        members = sorted(np.flatnonzero(labels == label), key=lambda i: hashlib.blake2b(b"%d" % i).digest())
        test.update(int(i) for i in members[: round(TEST_FRACTION * len(members))])
    return digits.images.astype(np.uint8), labels, frozenset(test)


def to_image(ink: np.ndarray, size: int) -> Image.Image:
    """An 8x8 ink array (0..16) as a `size` x `size` RGB image, dark ink on white."""
    gray = Image.fromarray((255 - ink.astype(np.float32) * (255 / 16)).round().astype(np.uint8))
    return gray.resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def load_digits_split(split: str, size: int = 32) -> list[tuple[Image.Image, int]]:
    """The (image, label) pairs of the "train" or "test" split, in the data set's order."""
    if split not in SPLITS:
        raise ValueError(f"unknown digits split {split!r}; expected 'train' or 'test'")
    if not isinstance(size, int) or not 8 <= size <= 4096:
        raise ValueError(f"digit image size must be an integer from 8 to 4096 pixels, got {size!r}")
    images, labels, test = scans()
    return [
        (to_image(images[i], size), int(labels[i]))
        for i in range(len(labels))
        if (i in test) == (split == "test")
    ]


def digit_caption(label: int, rng: random.Random | None = None) -> str:
    """'a handwritten 7' (canonical, without an rng) or a random phrasing of it."""
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label <= 9:
        raise ValueError(f"a digit label is 0 to 9, got {label!r}")
    template = CAPTIONS[0] if rng is None else rng.choice(CAPTIONS)
    return template.format(d=label, name=DIGIT_NAMES[label])


def digit_labels() -> list[str]:
    """The canonical captions of 0..9: the label texts of zero-shot classification."""
    return [digit_caption(label) for label in range(10)]
