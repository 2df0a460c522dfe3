"""Pieces of `trainer_state/`: generator states and optimiser state survive safetensors + JSON."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from alltokens.train.config import TrainConfig
from alltokens.train.optim import make_optimizer
from alltokens.train.state import _join_optimizer, _split_optimizer, capture_rng, restore_rng

from .tiny import tiny_lm


def draw() -> tuple:
    return random.random(), random.gauss(0, 1), np.random.rand(), torch.rand(3).tolist()


def test_rng_states_round_trip_through_json():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    random.gauss(0, 1)  # leaves a cached gaussian behind
    tensors, scalars = capture_rng()
    scalars = json.loads(json.dumps(scalars))
    expected = draw()
    draw()
    restore_rng(tensors, scalars)
    assert draw() == expected


def test_optimizer_state_round_trips_exactly():
    model = tiny_lm()
    opt = make_optimizer(model, TrainConfig(lr=1e-2))
    for _ in range(2):
        model(torch.randint(0, 64, (2, 5))).square().mean().backward()
        opt.step()
        opt.zero_grad()
    tensors, meta = _split_optimizer(opt.state_dict())
    assert all("." in k for k in tensors) and tensors  # flattened '<param>.<name>' keys
    meta = json.loads(json.dumps(meta))

    other = make_optimizer(tiny_lm(), TrainConfig(lr=1e-2))
    other.load_state_dict(_join_optimizer(tensors, meta))
    a, b = opt.state_dict(), other.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for idx in a["state"]:
        for name, value in a["state"][idx].items():
            assert torch.equal(value, b["state"][idx][name])
