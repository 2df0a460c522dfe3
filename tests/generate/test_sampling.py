"""The pure sampler: each logits processor, and the frequencies of what it draws.

Expected distributions are computed here with numpy, from the definitions, not with the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alltokens.generate.sampling import (
    SamplingSettings,
    check_max_new_tokens,
    make_generator,
    process_logits,
    sample,
)

LOGITS = [2.0, 1.6, 1.1, 0.5, 0.2, -0.4, -1.0, -3.0]
N_DRAWS = 40_000  # frequency error std <= sqrt(0.25 / N) = 0.0025
TOLERANCE = 0.0125  # 5 standard deviations


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def truncate(p: np.ndarray, keep: np.ndarray) -> np.ndarray:
    q = np.where(keep, p, 0.0)
    return q / q.sum()


def expected(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0) -> np.ndarray:
    p = softmax(np.array(LOGITS) / temperature)
    if top_k:
        kth = np.sort(p)[::-1][top_k - 1]
        p = truncate(p, p >= kth)
    if top_p < 1:
        keep = np.zeros(len(p), dtype=bool)
        total = 0.0
        for i in np.argsort(-p):  # most likely first, until the kept mass reaches top_p
            keep[i] = True
            total += p[i]
            if total >= top_p:
                break
        p = truncate(p, keep)
    if min_p:
        p = truncate(p, p >= min_p * p.max())
    return p


def frequencies(settings: SamplingSettings, seed: int = 0) -> np.ndarray:
    logits = torch.tensor(LOGITS).expand(N_DRAWS, -1)  # N_DRAWS independent rows
    ids = sample(logits, settings, torch.Generator().manual_seed(seed))
    return torch.bincount(ids, minlength=len(LOGITS)).numpy() / N_DRAWS


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"temperature": 0.6},
        {"temperature": 1.7},
        {"top_k": 3},
        {"top_p": 0.75},
        {"top_p": 0.3},  # only the most likely id reaches it
        {"min_p": 0.2},
        {"temperature": 1.3, "top_k": 6, "top_p": 0.9, "min_p": 0.05},
    ],
)
def test_sampling_frequencies_match_the_truncated_distribution(kwargs):
    want = expected(**kwargs)
    got = frequencies(SamplingSettings(**kwargs))
    assert np.abs(got - want).max() < TOLERANCE, (got, want)
    assert np.all(got[want == 0] == 0), "an excluded id was drawn"


def test_the_truncations_do_exclude_ids():
    # guards the test above against settings that happen to keep everything
    assert (expected(top_k=3) == 0).sum() == 5
    assert (expected(top_p=0.75) == 0).sum() >= 3
    assert (expected(min_p=0.2) == 0).sum() >= 3


def test_temperature_zero_is_argmax():
    logits = torch.randn(16, 50, generator=torch.Generator().manual_seed(0))
    ids = sample(logits, SamplingSettings(temperature=0))
    assert torch.equal(ids, logits.argmax(-1))


def test_half_precision_logits():
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(0)).bfloat16()
    assert torch.equal(sample(logits, SamplingSettings(temperature=0)), logits.float().argmax(-1))
    ids = sample(logits, SamplingSettings(top_p=0.9, min_p=0.01), torch.Generator().manual_seed(0))
    assert ids.dtype == torch.long and ids.shape == (8,) and ((ids >= 0) & (ids < 50)).all()


def test_a_seed_reproduces_and_another_seed_differs():
    settings = SamplingSettings(temperature=1.0, top_k=5)
    assert np.array_equal(frequencies(settings, seed=1), frequencies(settings, seed=1))
    logits = torch.tensor(LOGITS).expand(1000, -1)
    first = sample(logits, settings, torch.Generator().manual_seed(1))
    assert torch.equal(first, sample(logits, settings, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, sample(logits, settings, torch.Generator().manual_seed(2)))


def test_make_generator_follows_the_settings_seed():
    assert make_generator(SamplingSettings(), torch.device("cpu")) is None
    a = make_generator(SamplingSettings(seed=3), torch.device("cpu"))
    b = make_generator(SamplingSettings(seed=3), torch.device("cpu"))
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [2.0, -1.0, 0.5, 3.0]])
    previous = torch.tensor([[0, 1, 0], [3, 3, 3]])  # repeats are penalised once
    got = process_logits(logits, SamplingSettings(repetition_penalty=2.0), previous)
    assert torch.equal(got, torch.tensor([[1.0, -2.0, 0.5, 3.0], [2.0, -1.0, 0.5, 1.5]]))


def test_repetition_penalty_changes_the_greedy_choice():
    logits = torch.tensor([[3.0, 2.0, 0.0]])
    greedy = SamplingSettings(temperature=0, repetition_penalty=2.0)
    assert sample(logits, greedy, previous_ids=torch.tensor([[0]])).item() == 1
    assert sample(logits, greedy, previous_ids=torch.tensor([[2]])).item() == 0


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_allowed_ids_are_the_only_ones_drawn(temperature):
    logits = torch.tensor(LOGITS).expand(2000, -1)
    allowed = torch.zeros(len(LOGITS), dtype=torch.bool)
    allowed[[3, 6]] = True
    ids = sample(
        logits,
        SamplingSettings(temperature=temperature),
        torch.Generator().manual_seed(0),
        allowed_ids=allowed,
    )
    assert set(ids.tolist()) <= {3, 6}
    if temperature:
        assert set(ids.tolist()) == {3, 6}


def test_per_row_allowed_ids():
    logits = torch.zeros(2, 4)
    allowed = torch.tensor([[False, True, False, False], [False, False, False, True]])
    assert sample(logits, SamplingSettings(temperature=0), allowed_ids=allowed).tolist() == [1, 3]


def test_settings_round_trip_through_a_dict():
    s = SamplingSettings(temperature=0.7, top_k=40, top_p=0.9, min_p=0.05, repetition_penalty=1.1, seed=7)
    assert SamplingSettings.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    "field, value",
    [
        ("temperature", -0.1),
        ("temperature", math.nan),
        ("top_k", -1),
        ("top_k", 2.5),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("min_p", -0.1),
        ("min_p", 1.1),
        ("repetition_penalty", 0.0),
        ("repetition_penalty", -1.0),
    ],
)
def test_invalid_settings_name_the_value(field, value):
    with pytest.raises(ValueError, match=f"{field} .*{value}"):
        SamplingSettings(**{field: value})


@pytest.mark.parametrize("value", [-1, 2.0, True])
def test_invalid_max_new_tokens(value):
    with pytest.raises(ValueError, match=f"max_new_tokens .*{value}"):
        check_max_new_tokens(value)
