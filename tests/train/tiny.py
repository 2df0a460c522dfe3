"""Tiny models, configs and presets shared by the training tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from alltokens.models.lm import LM, LMConfig
from alltokens.train.config import TrainConfig

TINY_MODEL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)


def tiny_lm(vocab_size: int = 64, seed: int = 0, **overrides) -> LM:
    torch.manual_seed(seed)
    model = LM(LMConfig(vocab_size=vocab_size, max_position_embeddings=64, **{**TINY_MODEL, **overrides}))
    model.init_weights()
    return model


def tiny_train_config(**overrides) -> TrainConfig:
    base = dict(steps=20, batch_size=4, lr=3e-3, min_lr=3e-4, warmup_steps=2, eval_every=10, eval_steps=2)
    return TrainConfig(**{**base, **overrides})


def write_preset(path: Path, block_size: int = 32, **train) -> Path:
    """A preset JSON for the recipe with a model small enough to train in seconds."""
    preset = {
        "description": "test",
        "block_size": block_size,
        "model": TINY_MODEL,
        "train": {**tiny_train_config().to_dict(), "log_every": 5, "save_every": 10, **train},
    }
    path.write_text(json.dumps(preset))
    return path


REPETITIVE = "the quick brown fox jumps over the lazy dog. " * 4 + "\n"


class FixedBatches:
    """A re-iterable list of random id batches, with no `seek`: resume must fast-forward through it."""

    def __init__(self, n: int, batch_size: int = 4, length: int = 17, vocab_size: int = 64, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.batches = [
            {"ids": torch.randint(0, vocab_size, (batch_size, length), generator=g)} for _ in range(n)
        ]

    def __iter__(self):
        return iter(self.batches)
