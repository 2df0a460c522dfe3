"""The next-token objective: shifted targets, and a loss mask that selects which targets count."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alltokens.train.objectives import next_token

from .tiny import tiny_lm


def test_next_token_is_cross_entropy_of_shifted_targets():
    model = tiny_lm().eval()
    ids = torch.randint(0, 64, (3, 9))
    loss, metrics = next_token(model, {"ids": ids})
    logits = model(ids[:, :-1])  # (3, 8, V)
    expected = F.cross_entropy(logits.reshape(-1, 64), ids[:, 1:].reshape(-1))
    assert torch.allclose(loss, expected)
    assert metrics["tokens"] == 3 * 8
    assert not metrics["loss"].requires_grad and torch.equal(metrics["loss"], loss.detach())


def test_loss_mask_counts_only_the_marked_targets():
    model = tiny_lm().eval()
    ids = torch.randint(0, 64, (2, 7))
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[:, 4:] = True  # e.g. only the answer after a 4-token prompt
    loss, _ = next_token(model, {"ids": ids, "loss_mask": mask})
    logits = model(ids[:, :-1])  # (2, 6, V)
    per_token = F.cross_entropy(logits.reshape(-1, 64), ids[:, 1:].reshape(-1), reduction="none").view(2, 6)
    assert torch.allclose(loss, per_token[:, 3:].mean())
    assert not torch.allclose(loss, per_token.mean())


def test_loss_mask_first_column_is_never_a_target():
    model = tiny_lm().eval()
    ids = torch.randint(0, 64, (1, 5))
    only_first = torch.zeros(1, 5, dtype=torch.bool)
    only_first[:, :2] = True
    loss, _ = next_token(model, {"ids": ids, "loss_mask": only_first})
    logits = model(ids[:, :-1])
    assert torch.allclose(loss, F.cross_entropy(logits[0, :1], ids[0, 1:2]))


def test_inputs_replace_what_the_model_reads_but_not_the_targets():
    model = tiny_lm().eval()
    ids = torch.randint(0, 64, (2, 6))
    noised = ids.clone()
    noised[:, 2] = (ids[:, 2] + 1) % 64
    loss, _ = next_token(model, {"ids": ids, "inputs": noised})
    expected = F.cross_entropy(model(noised[:, :-1]).reshape(-1, 64), ids[:, 1:].reshape(-1))
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, next_token(model, {"ids": ids})[0])
