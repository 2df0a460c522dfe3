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

from alltokens.nn.attention import segment_mask, segment_positions


def next_token(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of predicting `ids[:, 1:]` from `ids[:, :-1]`.

    `batch["ids"]` is (B, T+1). An optional `batch["loss_mask"]`, bool (B, T+1) aligned with `ids`,
    marks the tokens that count as targets (e.g. only the answer in SFT, only text after the image in
    a VLM); its first column is never a target. The loss is the mean over counted targets. An optional
    `batch["inputs"]` (B, T+1) is what the model reads in place of `ids`, the targets staying `ids`:
    data noising (a corrupted context, the true next tokens). An optional `batch["segments"]` (B, T+1)
    int says which packed sequence each token belongs to (each a contiguous run): every sequence then
    attends only to itself and its positions start at 0 (`segment_mask`, `segment_positions`).
    """
    ids = batch["ids"]
    inputs, targets = batch.get("inputs", ids)[:, :-1], ids[:, 1:]  # (B, T), (B, T)
    packed = {}
    if "segments" in batch:
        segments = batch["segments"][:, :-1]  # (B, T)
        packed = {"positions": segment_positions(segments), "mask": segment_mask(segments)}
    if "loss_mask" in batch:  # logits only where they count: the model takes `select`
        counted = batch["loss_mask"][:, 1:]  # (B, T)
        logits = model(inputs, select=counted, **packed)  # (N, V)
        loss = F.cross_entropy(logits, targets[counted])
    else:
        logits = model(inputs, **packed)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    return loss, {"loss": loss.detach(), "tokens": inputs.numel()}


def contrastive_loss(
    img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, groups: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP's symmetric cross-entropy over the scaled cosines; returns (loss, image->text accuracy).

    img (B, D) and txt (B, D) are unit vectors, row i of each a matching pair; `scale` (0-d) multiplies
    the cosines into logits. Without `groups` pair i's only positive is i (the paper's targets).
    `groups` (B,) int says which items describe the same thing: in a small batch of synthetic data two
    captions are often identical, and one-hot targets would push each image away from the other's
    identical caption (a false negative), a fight neither side can win. Items of one group are
    positives of each other, and the target spreads evenly over them (soft targets). Both directions
    use the same targets, since "same group" is symmetric. The targets' entropy is subtracted (the
    loss is the KL divergence, same gradients), so 0 is a perfect model with or without duplicates.
    Accuracy counts a top-1 of the same group.
    """
    logits = scale * img @ txt.T  # (B, B): row = image, column = text
    B = logits.shape[0]
    if groups is None:
        positives = torch.eye(B, dtype=torch.bool, device=logits.device)  # (B, B)
    else:
        positives = groups[:, None] == groups[None, :]  # (B, B), symmetric, diagonal true
    sizes = positives.sum(dim=1, keepdim=True).to(logits.dtype)  # (B, 1) positives per row
    targets = positives.to(logits.dtype) / sizes  # (B, B), rows sum to 1
    entropy = sizes.log().mean()  # of the targets: the floor of the cross-entropy, 0 without duplicates
    loss = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) - entropy
    hits = positives[torch.arange(B, device=logits.device), logits.argmax(dim=1)]  # (B,)
    return loss, hits.float().mean()


def contrastive(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """CLIP training: `model(pixels, ids, attention_mask) -> (img, txt, scale)` and `contrastive_loss`.

    `batch`: "pixels" (B, 3, H, W), "ids" (B, T) right-padded with "attention_mask" (B, T), and an
    optional "groups" (B,) int. The temperature is the model's own learnable, clipped `scale()`;
    logging it shows whether it saturates.
    """
    img, txt, scale = model(batch["pixels"], batch["ids"], batch["attention_mask"])  # (B, D), (B, D), ()
    loss, accuracy = contrastive_loss(img, txt, scale, batch.get("groups"))
    metrics = {"loss": loss.detach(), "accuracy": accuracy, "scale": scale.detach()}
    return loss, {**metrics, "tokens": int(batch["attention_mask"].sum())}
