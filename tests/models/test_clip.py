"""CLIP: two towers, unit embeddings, a clipped temperature, config round trip."""

import pytest
import torch

from alltokens.models import build_model, config_from_dict
from alltokens.models.clip import CLIP, CLIPConfig, clip_text_config
from alltokens.models.vit import ViTConfig
from alltokens.nn.config import ConfigError


def tiny() -> CLIPConfig:
    vision = ViTConfig(
        image_size=16,
        patch_size=4,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        embedding_norm=True,
        patch_bias=False,
        mlp="quick_gelu",
    )
    text = clip_text_config(
        vocab_size=40,
        hidden_size=20,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=12,
        mlp="quick_gelu",
    )
    return CLIPConfig(vision=vision, text=text, projection_dim=8)


def test_config_round_trips_with_nested_towers(tmp_path):
    cfg = tiny()
    cfg.save(tmp_path / "config.json")
    again = CLIPConfig.load(tmp_path / "config.json")
    assert again == cfg and isinstance(again.vision, ViTConfig)
    assert isinstance(build_model(config_from_dict(cfg.to_dict())), CLIP)


def test_embeddings_are_unit_vectors_and_padding_does_not_move_text():
    torch.manual_seed(0)
    m = CLIP(tiny())
    m.init_weights()
    m.eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [3, 4, 5, 6, 7]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        img, txt, scale = m(torch.randn(3, 3, 16, 16), ids, mask)
        alone = m.encode_text(ids[:1, :3])
    assert img.shape == (3, 8) and txt.shape == (2, 8)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(txt[0], alone[0], atol=1e-5, rtol=0)
    assert torch.isclose(scale, torch.tensor(1 / 0.07), rtol=1e-4)
    with torch.no_grad():
        m.logit_scale.fill_(10.0)
    assert m.scale().item() == 100.0  # clipped as in the paper


def test_a_text_tower_that_is_not_clip_like_is_refused():
    with pytest.raises(ConfigError, match="causal"):
        CLIPConfig(text=clip_text_config(causal=False))
