"""AdamW with decoupled weight decay on matrices only, and the warmup + cosine learning-rate schedule.

Weight decay: every trainable parameter with `dim >= 2` decays, which includes embedding tables (and so
the tied LM head); biases and norm gains (`dim < 2`) do not. This is nanoGPT's rule (`configure_optimizers`);
minGPT also exempted embeddings, and nanoGPT reports no measurable difference, so we keep the simpler rule.

The schedule is a pure function of the step, so resuming needs no scheduler object: the step is enough.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from alltokens.train.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: matrices with `weight_decay`, vectors and scalars without. Frozen params are left out."""
    decay, no_decay = [], []
    for p in model.parameters():  # tied weights appear once
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over `param_groups`, using the fused kernel (one kernel per step, CPU and CUDA)."""
    groups = param_groups(model, cfg.weight_decay)
    if not any(g["params"] for g in groups):
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=True)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for update `step` (0-based): linear warmup to `lr`, then cosine decay to `min_lr`.

    Warmup starts at lr / (warmup + 1) rather than 0 so that the first update moves the weights
    (nanoGPT's `get_lr`); the cosine reaches `min_lr` exactly at step `steps`.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
