"""HF ViT checkpoints load into our ViT with the same hidden states as `transformers`."""

from __future__ import annotations

import json

import pytest
import torch

from alltokens.io.checkpoint import CheckpointError, load_weights, save_weights
from alltokens.io.export import export_ours
from alltokens.io.hf import vit
from alltokens.io.load import load_model
from alltokens.models.vit import ViT, ViTConfig
from alltokens.nn.config import ConfigError

transformers = pytest.importorskip("transformers")

# unusual shapes: 3 heads of 16, an MLP that is not 4x, a 30px image of 6px patches (25 + [CLS] tokens)
HF_CONFIG = dict(
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=72,
    image_size=30,
    patch_size=6,
    layer_norm_eps=1e-5,
    qkv_bias=False,
)


def pixels(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 30, 30, generator=torch.Generator().manual_seed(seed))


def hf_dir(path, random_weights, model_class=None, **changes):
    config = transformers.ViTConfig(**{**HF_CONFIG, **changes})
    model = random_weights((model_class or transformers.ViTModel)(config))
    model.save_pretrained(path, safe_serialization=True)
    return model


def test_config_maps_every_field():
    cfg = vit.config_from_hf({**HF_CONFIG, "hidden_act": "gelu_new", "hidden_dropout_prob": 0.1})
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.mlp_size) == (48, 2, 3, 72)
    assert (cfg.image_size, cfg.patch_size, cfg.num_tokens, cfg.num_channels) == (30, 6, 26, 3)
    assert (cfg.norm_eps, cfg.qkv_bias, cfg.mlp, cfg.hidden_dropout) == (1e-5, False, "gelu_tanh", 0.1)
    assert (cfg.pooling, cfg.cls_token, cfg.patch_bias, cfg.embedding_norm) == ("cls", True, True, False)
    assert vit.config_from_hf({**HF_CONFIG, "image_size": [30, 30]}).image_size == 30
    defaults = vit.config_from_hf({"model_type": "vit"})  # transformers' defaults: ViT-B/16
    assert (defaults.hidden_size, defaults.num_hidden_layers, defaults.mlp_size) == (768, 12, 3072)
    assert (defaults.image_size, defaults.patch_size, defaults.norm_eps, defaults.qkv_bias) == (
        224,
        16,
        1e-12,
        True,
    )


@pytest.mark.parametrize("changes", [{}, {"qkv_bias": True, "hidden_act": "gelu_pytorch_tanh"}])
def test_random_vit_matches_transformers(tmp_path, random_weights, changes):
    hf = hf_dir(tmp_path, random_weights, **changes)
    cfg, ours = load_model(tmp_path)
    assert isinstance(ours, ViT) and cfg.qkv_bias == hf.config.qkv_bias
    x = pixels()
    with torch.no_grad():
        expected = hf(pixel_values=x).last_hidden_state
        got = ours(x)
        pooled = ours.embed(x)
    assert got.shape == expected.shape == (2, 26, 48)
    assert expected.abs().mean() > 0.1  # not a degenerate comparison
    assert (got - expected).abs().max().item() <= 1e-4
    assert (pooled - expected[:, 0]).abs().max().item() <= 1e-4


def test_classification_checkpoint_with_prefix_pooler_and_head(tmp_path, random_weights):
    hf = hf_dir(tmp_path, random_weights, transformers.ViTForImageClassification, num_labels=5)
    stored = set(load_weights(tmp_path))
    assert any(n.startswith("vit.") for n in stored) and "classifier.weight" in stored
    _, ours = load_model(tmp_path)
    x = pixels(1)
    with torch.no_grad():
        expected = hf.vit(pixel_values=x).last_hidden_state
        got = ours(x)
    assert (got - expected).abs().max().item() <= 1e-4


def test_patch_conv_is_flattened_and_qkv_fused(tmp_path, random_weights):
    """Checked on the names in the file: transformers' in-memory names differ from what it saves."""
    hf_dir(tmp_path, random_weights, model_class=lambda c: transformers.ViTModel(c, add_pooling_layer=False))
    stored = load_weights(tmp_path)
    cfg = vit.config_from_hf(HF_CONFIG)
    state = vit.state_dict_from_hf(stored, cfg)
    ours = ViT(cfg).state_dict()
    assert set(state) == set(ours)
    assert all(state[k].shape == ours[k].shape for k in ours)
    conv = stored["embeddings.patch_embeddings.projection.weight"]  # (48, 3, 6, 6)
    assert torch.equal(state["patch_embed.weight"][:, 40], conv[:, 1, 0, 4])  # (c, row, col) = 36 + 4
    key = stored["encoder.layer.1.attention.attention.key.weight"]
    assert torch.equal(state["core.blocks.1.attn.qkv.weight"][48:96], key)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_act": "relu"}, "hidden_act"),
        ({"image_size": [30, 36]}, "image_size"),
        ({"patch_size": 0}, "patch_size"),
        ({"image_size": 32}, "not a multiple of patch_size"),
    ],
)
def test_unsupported_config_is_refused(change, message):
    hf = {k: v for k, v in {**HF_CONFIG, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        vit.config_from_hf(hf)


def _rewrite_weights(directory, edit) -> None:
    state = dict(load_weights(directory))
    edit(state)
    save_weights(directory, state)


def test_checkpoint_missing_part_of_qkv(tmp_path, random_weights):
    hf_dir(tmp_path, random_weights)
    _rewrite_weights(tmp_path, lambda s: s.pop("encoder.layer.1.attention.attention.value.weight"))
    with pytest.raises(CheckpointError, match=r"attention\.attention\.value\.weight"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "name, ours",
    [
        ("embeddings.position_embeddings", r"positions\.weight"),
        ("encoder.layer.0.output.dense.weight", r"core\.blocks\.0\.mlp\.proj\.weight"),
    ],
)
def test_checkpoint_missing_a_tensor(tmp_path, random_weights, name, ours):
    hf_dir(tmp_path, random_weights)
    _rewrite_weights(tmp_path, lambda s: s.pop(name))
    with pytest.raises(CheckpointError, match=f"missing weights .*{ours}"):
        load_model(tmp_path)


def test_checkpoint_of_another_grid_is_refused(tmp_path, random_weights):
    """A config.json whose image size disagrees with the stored position table."""
    hf_dir(tmp_path, random_weights)
    state = dict(load_weights(tmp_path))
    state["embeddings.position_embeddings"] = state["embeddings.position_embeddings"][:, :17]
    save_weights(tmp_path, state)
    with pytest.raises(CheckpointError, match=r"wrong shapes .*positions\.weight \(17, 48\)"):
        load_model(tmp_path)


def test_our_vit_config_round_trips():
    cfg = vit.config_from_hf(HF_CONFIG)
    assert ViTConfig.from_dict(cfg.to_dict()) == cfg


def test_preprocessor_statistics_replace_the_defaults(tmp_path, random_weights):
    """A DeiT-style directory: ImageNet mean and std in preprocessor_config.json, as transformers saves it."""
    hf_dir(tmp_path, random_weights)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    transformers.ViTImageProcessor(image_mean=mean, image_std=std).save_pretrained(tmp_path)
    cfg, _ = load_model(tmp_path)
    assert (cfg.image_mean, cfg.image_std) == (mean, std)


@pytest.mark.parametrize(
    "stats, message",
    [
        ({"image_mean": [0.5, 0.5]}, "image_mean must be 3 numbers, got"),
        ({"image_std": [0.5, 0.0, 0.5]}, "image_std must be 3 numbers above 0"),
        ({"image_mean": "imagenet"}, "image_mean must be 3 numbers"),
    ],
)
def test_bad_preprocessor_statistics_are_named(tmp_path, random_weights, stats, message):
    hf_dir(tmp_path, random_weights)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(stats))
    with pytest.raises(ConfigError, match=f"preprocessor_config.json: {message}"):
        load_model(tmp_path)


def test_exported_to_ours_keeps_the_pixel_statistics_and_the_outputs(tmp_path, random_weights):
    hf_dir(tmp_path / "hf", random_weights)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    transformers.ViTImageProcessor(image_mean=mean, image_std=std).save_pretrained(tmp_path / "hf")
    export_ours(tmp_path / "hf", tmp_path / "ours")
    cfg, ours = load_model(tmp_path / "ours")
    assert (cfg.kind, cfg.image_mean, cfg.image_std) == ("vit", mean, std)
    _, theirs = load_model(tmp_path / "hf")
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels()), theirs(pixels()), rtol=0, atol=0)
