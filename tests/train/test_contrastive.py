"""The contrastive objective: the paper's loss by hand, groups of duplicates, gradients to both towers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from alltokens.models.clip import CLIP, CLIPConfig, clip_text_config
from alltokens.models.vit import ViTConfig
from alltokens.train.objectives import contrastive, contrastive_loss


def unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_loss_equals_a_hand_computed_case():
    img = unit([1.0, 0.0], [0.6, 0.8])
    txt = unit([0.8, 0.6], [0.0, 1.0])
    scale = torch.tensor(2.0)
    # cosines: img0.txt0 = 0.8, img0.txt1 = 0, img1.txt0 = 0.96, img1.txt1 = 0.8; logits are twice that
    logits = [[1.6, 0.0], [1.92, 1.6]]

    def ce(row: list[float], target: int) -> float:
        return -row[target] + math.log(sum(math.exp(v) for v in row))

    i2t = (ce(logits[0], 0) + ce(logits[1], 1)) / 2
    t2i = (ce([logits[0][0], logits[1][0]], 0) + ce([logits[0][1], logits[1][1]], 1)) / 2
    loss, accuracy = contrastive_loss(img, txt, scale)
    assert loss.item() == pytest.approx((i2t + t2i) / 2, rel=1e-6)
    assert accuracy.item() == 0.5  # image 1 is nearer to text 0 than to its own text


def test_groups_make_duplicates_positives_of_each_other():
    # items 0 and 1 describe the same thing: identical images, identical captions
    img = unit([1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    txt = img.clone()
    scale = torch.tensor(50.0)
    alone, acc_alone = contrastive_loss(img, txt, scale)
    grouped, acc_grouped = contrastive_loss(img, txt, scale, torch.tensor([7, 7, 3]))
    assert alone.item() == pytest.approx(2 / 3 * math.log(2), rel=1e-3)  # each duplicate stuck at 1/2
    assert grouped.item() < 1e-6  # a perfect model reaches the minimum
    assert acc_grouped.item() == 1.0 and acc_alone.item() >= 2 / 3

    # with groups, the gradient never pushes image 0 away from its duplicate's caption
    img = img.clone().requires_grad_()
    loss, _ = contrastive_loss(img, txt, scale, torch.tensor([7, 7, 3]))
    loss.backward()
    assert (img.grad[0] @ txt[1]).item() <= 0.0  # descent direction -grad has non-negative overlap


def test_soft_targets_split_over_the_group():
    # a uniform model (all cosines equal) has cross-entropy log 4; the targets' entropy is
    # (log 2 + log 2 + 0 + 0) / 4, so the KL is what remains
    img = unit([1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0])
    loss, _ = contrastive_loss(img, img, torch.tensor(1.0), torch.tensor([0, 0, 1, 2]))
    assert loss.item() == pytest.approx(math.log(4) - math.log(2) / 2, rel=1e-6)


def tiny_clip() -> CLIP:
    vision = ViTConfig(
        image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    )
    text = clip_text_config(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    torch.manual_seed(0)
    model = CLIP(CLIPConfig(vision=vision, text=text, projection_dim=8))
    model.init_weights()
    return model


def test_gradients_reach_both_towers_and_the_temperature():
    model = tiny_clip()
    batch = {
        "pixels": torch.randn(3, 3, 16, 16),
        "ids": torch.tensor([[1, 2, 3], [4, 5, 0], [6, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.bool),
        "groups": torch.tensor([0, 1, 2]),
    }
    loss, metrics = contrastive(model, batch)
    loss.backward()
    assert set(metrics) == {"loss", "accuracy", "scale", "tokens"} and metrics["tokens"] == 6
    assert metrics["scale"].item() == pytest.approx(1 / 0.07, rel=1e-4)
    for name in (
        "vision.patch_embed.weight",
        "text.embed.tokens.weight",
        "vision_proj.weight",
        "text_proj.weight",
    ):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert model.logit_scale.grad is not None and model.logit_scale.grad.item() != 0.0
