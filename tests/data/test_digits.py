"""scikit-learn's handwritten digits: a fixed stratified split, upscaled RGB images, captions."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from alltokens.data.digits import DIGIT_NAMES, digit_caption, digit_labels, load_digits_split, scans


@pytest.fixture(scope="module")
def splits():
    return load_digits_split("train"), load_digits_split("test")


def test_split_sizes_and_stratification(splits):
    train, test = splits
    assert len(train) + len(test) == 1797
    n_train, n_test = Counter(label for _, label in train), Counter(label for _, label in test)
    assert set(n_train) == set(n_test) == set(range(10))
    for label in range(10):
        total = n_train[label] + n_test[label]
        assert n_test[label] == round(0.2 * total)


def test_splits_are_disjoint_and_deterministic():
    train = {image.tobytes() for image, _ in load_digits_split("train", size=8)}
    test = {image.tobytes() for image, _ in load_digits_split("test", size=8)}
    assert len(train) == 1438 and len(test) == 359 and not train & test
    first = [label for _, label in load_digits_split("test", size=8)]
    scans.cache_clear()  # re-read from scikit-learn under a different global numpy seed
    np.random.seed(123)
    assert [label for _, label in load_digits_split("test", size=8)] == first
    _, _, test_indices = scans()
    assert max(test_indices) > 1700 and min(test_indices) < 100  # spread over the data, not its head


def test_images_are_dark_ink_on_light_rgb(splits):
    for image, _ in splits[0][:50]:
        assert image.size == (32, 32) and image.mode == "RGB"
        pixels = np.asarray(image)
        assert pixels[0, 0].min() > 200 and pixels.min() < 80  # white paper, black ink
    image, _ = load_digits_split("test", size=64)[0]
    assert image.size == (64, 64)


def test_captions_and_labels():
    assert digit_caption(7) == "a handwritten 7"
    assert digit_labels() == [f"a handwritten {d}" for d in range(10)]
    rng = random.Random(0)
    phrasings = {digit_caption(3, rng) for _ in range(60)}
    assert len(phrasings) > 3 and all("3" in p or "three" in p for p in phrasings)
    assert DIGIT_NAMES[7] == "seven" and len(DIGIT_NAMES) == 10


@pytest.mark.parametrize("label", [-1, 10, "7", 7.0, None, True])
def test_bad_labels(label):
    with pytest.raises(ValueError, match="digit label is 0 to 9"):
        digit_caption(label)


def test_bad_split_and_size():
    with pytest.raises(ValueError, match="unknown digits split 'val'"):
        load_digits_split("val")
    with pytest.raises(ValueError, match="digit image size"):
        load_digits_split("train", size=4)
