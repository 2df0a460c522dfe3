"""TrainConfig round trip and validation, the learning-rate schedule, weight-decay groups."""

from __future__ import annotations

import math

import pytest
import torch

from alltokens.nn.config import ConfigError
from alltokens.train.config import TrainConfig
from alltokens.train.optim import lr_at, make_optimizer, param_groups

from .tiny import tiny_lm


def test_train_config_round_trips_through_json(tmp_path):
    cfg = TrainConfig(steps=7, lr=2e-3, beta2=0.99, bf16=True)
    cfg.save(tmp_path / "train.json")
    assert TrainConfig.load(tmp_path / "train.json") == cfg


@pytest.mark.parametrize(
    "field, value",
    [
        ("steps", 0),
        ("batch_size", -1),
        ("grad_accum", 0),
        ("warmup_steps", -1),
        ("grad_clip", -0.5),
        ("beta2", 1.0),
    ],
)
def test_train_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ConfigError, match=field.replace("beta2", "betas")):
        TrainConfig(**{field: value})


def test_train_config_rejects_min_lr_above_lr():
    with pytest.raises(ConfigError, match="min_lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)


def test_train_config_rejects_unknown_field():
    with pytest.raises(ConfigError, match="unknown field"):
        TrainConfig.from_dict({"stepz": 3})


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_min_lr():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr=0.1)
    lrs = [lr_at(s, cfg) for s in range(cfg.steps + 1)]
    warm = lrs[:10]
    assert 0 < warm[0] < warm[-1] < 1.0
    assert all(b - a == pytest.approx(1 / 11) for a, b in zip(warm, warm[1:]))  # linear
    assert lrs[10] == pytest.approx(1.0)  # peak right after warmup
    decay = lrs[10:]
    assert all(a >= b for a, b in zip(decay, decay[1:]))  # monotone
    assert lrs[cfg.steps] == pytest.approx(0.1)  # ends at min_lr
    mid = 10 + (cfg.steps - 10) // 2
    assert lrs[mid] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # cosine midpoint


def test_schedule_without_warmup_starts_at_peak():
    cfg = TrainConfig(steps=10, warmup_steps=0, lr=0.5, min_lr=0.0)
    assert lr_at(0, cfg) == pytest.approx(0.5)
    assert lr_at(10, cfg) == pytest.approx(0.0)


def test_weight_decay_on_matrices_only_and_tied_weights_once():
    model = tiny_lm()
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    ids = {id(p) for p in decay["params"]}
    assert id(model.embed.tokens.weight) in ids  # embeddings (and the tied head) decay
    assert id(model.core.blocks[0].norm1.weight) in {id(p) for p in no_decay["params"]}
    n_unique = len({id(p) for p in model.parameters()})
    assert len(decay["params"]) + len(no_decay["params"]) == n_unique


def test_frozen_parameters_are_left_out_of_the_optimizer():
    model = tiny_lm()
    for p in model.core.parameters():
        p.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.1)
    assert {id(p) for p in decay["params"] + no_decay["params"]} == {id(model.embed.tokens.weight)}


def test_optimizer_refuses_a_model_with_nothing_to_train():
    model = tiny_lm()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer(model, TrainConfig())


def test_decay_shrinks_matrices_but_not_norm_gains():
    model = tiny_lm()
    opt = make_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.5))
    w, g = model.core.blocks[0].attn.qkv.weight, model.core.blocks[0].norm1.weight
    w0, g0 = w.detach().clone(), g.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.allclose(w, w0 * (1 - 0.1 * 0.5))
    assert torch.equal(g, g0)
