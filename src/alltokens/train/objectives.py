"""Objectives: `(model, batch) -> (loss, metrics)`. The trainer calls them and knows nothing else.

Metric values stay 0-d tensors (no `.item()`, so no device sync per step); the trainer averages them
over micro-batches and converts to floats only when it logs. An objective may also report `tokens`, a
plain int, which the trainer sums for its tokens/s readout.

Shape notation: B batch, T tokens, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100  # cross_entropy's ignore_index


def next_token(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of predicting `ids[:, 1:]` from `ids[:, :-1]`.

    `batch["ids"]` is (B, T+1). An optional `batch["loss_mask"]`, bool (B, T+1) aligned with `ids`,
    marks the tokens that count as targets (e.g. only the answer in SFT, only text after the image in
    a VLM); its first column is never a target. The loss is the mean over counted targets.
    """
    ids = batch["ids"]
    inputs, targets = ids[:, :-1], ids[:, 1:]  # (B, T), (B, T)
    loss_mask = batch.get("loss_mask")
    if loss_mask is not None:
        targets = targets.masked_fill(~loss_mask[:, 1:], IGNORE)
    logits = model(inputs)  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    return loss, {"loss": loss.detach(), "tokens": inputs.numel()}
