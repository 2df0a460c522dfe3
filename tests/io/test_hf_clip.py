"""HF CLIP checkpoints load into our CLIP with the same image and text embeddings as `transformers`."""

from __future__ import annotations

import math

import pytest
import torch

from alltokens.io.checkpoint import CheckpointError, load_weights, save_weights
from alltokens.io.hf import clip
from alltokens.io.load import load_model
from alltokens.models.clip import CLIP, CLIPConfig
from alltokens.nn.config import ConfigError

transformers = pytest.importorskip("transformers")

V = 99  # text vocabulary; the end-of-text token is its largest id, as in CLIP's tokenizer
EOT = V - 1
# unusual shapes: 3 vision heads of 16, 2 text heads of 20, MLPs that are not 4x, 25 patches of 6px,
# a projection width unlike either tower's, eps 1e-6 in the text tower
VISION = dict(
    hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=72, image_size=30, patch_size=6
)  # fmt: skip
TEXT = dict(
    vocab_size=V, hidden_size=40, num_hidden_layers=2, num_attention_heads=2, intermediate_size=56,
    max_position_embeddings=16, layer_norm_eps=1e-6, bos_token_id=EOT - 1, eos_token_id=EOT, pad_token_id=0,
)  # fmt: skip
HF_CONFIG = dict(vision_config=VISION, text_config=TEXT, projection_dim=24)
LOGIT_SCALE = math.log(20.0)  # not the default 2.6592 (1 / 0.07)


def hf_dir(path, random_weights, act: str = "quick_gelu", eos_token_id: int = EOT):
    config = transformers.CLIPConfig(
        vision_config={**VISION, "hidden_act": act},
        text_config={**TEXT, "hidden_act": act, "eos_token_id": eos_token_id},
        projection_dim=24,
    )
    model = random_weights(transformers.CLIPModel(config))
    with torch.no_grad():
        model.logit_scale.fill_(LOGIT_SCALE)
    model.save_pretrained(path, safe_serialization=True)
    return model


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pixels (2, 3, 30, 30); ids (3, 12) as CLIP's tokenizer makes them: start token, text, end-of-text,
    then right padding (with id 0, which is not the end token); the mask of real tokens."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(2, 3, 30, 30, generator=g)
    ids = torch.randint(1, EOT - 1, (3, 12), generator=g)
    lengths = [12, 8, 3]
    mask = torch.arange(12)[None] < torch.tensor(lengths)[:, None]  # (3, 12)
    ids[:, 0] = EOT - 1
    ids[torch.arange(3), torch.tensor(lengths) - 1] = EOT
    ids[~mask] = 0
    return pixels, ids, mask


def test_config_maps_every_field():
    cfg = clip.config_from_hf(HF_CONFIG)
    v, t = cfg.vision, cfg.text
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.mlp_size) == (48, 2, 3, 72)
    assert (v.image_size, v.patch_size, v.num_tokens, v.mlp, v.norm_eps) == (30, 6, 26, "quick_gelu", 1e-5)
    assert (v.patch_bias, v.embedding_norm, v.pooling) == (False, True, "cls")
    assert v.image_mean == clip.IMAGE_MEAN and v.image_std == clip.IMAGE_STD
    assert (t.vocab_size, t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.mlp_size) == (
        V,
        40,
        2,
        2,
        56,
    )
    assert (t.max_position_embeddings, t.norm_eps, t.causal, t.pooling) == (16, 1e-6, True, "last")
    assert (cfg.projection_dim, cfg.logit_scale_init) == (24, 2.6592)
    assert CLIPConfig.from_dict(cfg.to_dict()) == cfg


def test_old_config_files_get_transformers_defaults():
    """An old file: fields left out, and the shapes in the legacy `*_config_dict` entries."""
    cfg = clip.config_from_hf(
        {"model_type": "clip", "text_config_dict": {"hidden_size": 64, "num_attention_heads": 4}}
    )
    assert (cfg.vision.hidden_size, cfg.vision.patch_size, cfg.vision.num_hidden_layers) == (768, 32, 12)
    assert (cfg.text.hidden_size, cfg.text.vocab_size, cfg.text.mlp_size, cfg.projection_dim) == (
        64,
        49408,
        2048,
        512,
    )
    assert cfg.text.mlp == cfg.vision.mlp == "quick_gelu"
    assert cfg.text.pad_token_id == 1
    assert (
        clip.config_from_hf({"text_config": {"vocab_size": 10, "pad_token_id": 49407}}).text.pad_token_id == 0
    )


@pytest.mark.parametrize(
    "act, eos_token_id",
    [("quick_gelu", EOT), ("gelu", 2)],  # 2: legacy configs, where transformers pools at argmax(ids)
    ids=["quick_gelu-eos", "gelu-legacy-argmax"],
)
def test_random_clip_matches_transformers(tmp_path, random_weights, act, eos_token_id):
    hf = hf_dir(tmp_path, random_weights, act, eos_token_id)
    cfg, ours = load_model(tmp_path)
    assert isinstance(ours, CLIP) and cfg.vision.mlp == cfg.text.mlp == act
    pixels, ids, mask = inputs()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long(), pixel_values=pixels)
        image, text, scale = ours(pixels, ids, mask)
        features = hf.get_image_features(pixel_values=pixels).pooler_output
    assert image.shape == (2, 24) and text.shape == (3, 24)
    assert (image - expected.image_embeds).abs().max().item() <= 1e-4
    assert (text - expected.text_embeds).abs().max().item() <= 1e-4
    assert (image - torch.nn.functional.normalize(features, dim=-1)).abs().max().item() <= 1e-4
    assert scale.item() == pytest.approx(20.0, rel=1e-6)
    logits = scale * image @ text.T  # (B, K)
    assert expected.logits_per_image.abs().max() > 1.0  # not a degenerate comparison
    assert (logits - expected.logits_per_image).abs().max().item() <= 1e-3


def test_pooled_image_vector_is_transformers_pooler_output(tmp_path, random_weights):
    """post_layernorm is our final norm over every token; on [CLS] it is HF's pooler output."""
    hf = hf_dir(tmp_path, random_weights)
    _, ours = load_model(tmp_path)
    pixels, _, _ = inputs(1)
    with torch.no_grad():
        expected = hf.vision_model(pixel_values=pixels).pooler_output
        got = ours.vision.embed(pixels)
    assert (got - expected).abs().max().item() <= 1e-4


def test_name_tables_cover_every_tensor(tmp_path, random_weights):
    hf_dir(tmp_path, random_weights)
    stored = load_weights(tmp_path)
    cfg = clip.config_from_hf(HF_CONFIG)
    state = clip.state_dict_from_hf(stored, cfg)
    ours = CLIP(cfg).state_dict()
    assert set(state) == set(ours)
    assert all(state[k].shape == ours[k].shape for k in ours)
    v = stored["text_model.encoder.layers.1.self_attn.v_proj.bias"]
    assert torch.equal(state["text.core.blocks.1.attn.qkv.bias"][80:], v)
    assert torch.equal(state["vision.cls"].flatten(), stored["vision_model.embeddings.class_embedding"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"vision_config": {**VISION, "hidden_act": "relu"}}, "CLIP vision config.json: hidden_act 'relu'"),
        ({"text_config": {**TEXT, "hidden_act": "silu"}}, "CLIP text config.json: hidden_act 'silu'"),
        ({"vision_config": {**VISION, "image_size": [30, 24]}}, "image_size"),
        ({"vision_config": {**VISION, "image_size": 32}}, "not a multiple of patch_size"),
        ({"text_config": "oops"}, "text_config must be an object"),
    ],
)
def test_unsupported_config_is_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        clip.config_from_hf({**HF_CONFIG, **change})


def _rewrite_weights(directory, edit) -> None:
    state = dict(load_weights(directory))
    edit(state)
    save_weights(directory, state)


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "text_model.encoder.layers.0.self_attn.k_proj.bias",
            r"lacks \['text_model\.encoder\.layers\.0\.self_attn\.k_proj\.bias'\]",
        ),
        (
            "vision_model.encoder.layers.1.mlp.fc2.weight",
            r"missing weights .*vision\.core\.blocks\.1\.mlp\.proj\.weight",
        ),
        ("vision_model.post_layernorm.bias", r"missing weights .*vision\.core\.norm\.bias"),
        ("logit_scale", r"missing weights .*logit_scale"),
        ("text_projection.weight", r"missing weights .*text_proj\.weight"),
    ],
)
def test_checkpoint_missing_a_tensor(tmp_path, random_weights, name, message):
    hf_dir(tmp_path, random_weights)
    _rewrite_weights(tmp_path, lambda s: s.pop(name))
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path)


def test_checkpoint_with_an_unknown_tensor(tmp_path, random_weights):
    hf_dir(tmp_path, random_weights)
    _rewrite_weights(tmp_path, lambda s: s.update({"vision_model.adapter.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected weights .*vision_model\.adapter\.weight"):
        load_model(tmp_path)


def test_legacy_position_ids_buffers_are_dropped(tmp_path, random_weights):
    hf_dir(tmp_path, random_weights)
    buffers = {
        f"{t}_model.embeddings.position_ids": torch.arange(n)[None] for t, n in (("vision", 26), ("text", 16))
    }
    _rewrite_weights(tmp_path, lambda s: s.update(buffers))
    cfg, _ = load_model(tmp_path)
    assert cfg.vision.num_tokens == 26
