"""Hugging Face ViT checkpoints (`ViTModel`, `ViTForImageClassification`, ...) -> `models.vit.ViT`.

HF's ViT is our ViT with its defaults: a [CLS] token, a learned position table over the fixed grid,
pre-LayerNorm blocks with exact GELU and a final LayerNorm over every token. The conversion is the
rename in `TABLE` plus three reshapes:

- query/key/value are separate linears in HF and one fused `qkv` [q | k | v] here (concatenated);
- the patch embedding is a stride-p `Conv2d` weight (C, 3, p, p), flattened to our `Linear`'s
  (C, 3*p*p), which is the same function on `tokenizers.patches.patchify` vectors;
- the position table is stored as a (1, T, C) parameter and becomes our (T, C) embedding table.

Checkpoints saved from `ViTModel` have bare names; task models put them under `vit.`. Both are read.
Our ViT has no pooler: HF's (a dense layer and tanh on [CLS], unused by classification and by CLIP-style
pooling) is dropped, like the task heads (`classifier.`, the masked-image `decoder.`) and the unused
`embeddings.mask_token`. Pooling "cls" then gives HF's `last_hidden_state[:, 0]`.

Pixels: `image_mean`/`image_std` default to ViTConfig's 0.5, which is what `ViTImageProcessor` uses
for google/vit-* checkpoints; a directory's `preprocessor_config.json` (DeiT's ImageNet statistics, for
one) replaces them when `io.load` reads it.
"""

from __future__ import annotations

from typing import Any

import torch

from alltokens.io.hf import names
from alltokens.models.vit import ViTConfig
from alltokens.nn.config import ConfigError

MODEL_TYPES = ("vit",)

TABLE: names.Table = {
    "patch_embed": "embeddings.patch_embeddings.projection",
    "core.blocks.{i}.norm1": "encoder.layer.{i}.layernorm_before",
    "core.blocks.{i}.attn.qkv": tuple(
        f"encoder.layer.{{i}}.attention.attention.{n}" for n in ("query", "key", "value")
    ),
    "core.blocks.{i}.attn.proj": "encoder.layer.{i}.attention.output.dense",
    "core.blocks.{i}.norm2": "encoder.layer.{i}.layernorm_after",
    "core.blocks.{i}.mlp.fc": "encoder.layer.{i}.intermediate.dense",
    "core.blocks.{i}.mlp.proj": "encoder.layer.{i}.output.dense",
    "core.norm": "layernorm",
}
IGNORED = ("pooler.", "classifier.", "decoder.", "embeddings.mask_token")

# transformers' ViTConfig defaults (the ViT-B/16 shape) for fields a config.json may leave out
DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": True,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def square(value: Any, key: str, family: str) -> int:
    """An HF image or patch size, an int or an [h, w] pair, as one side; non-square sizes are refused."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ConfigError(f"{family} config.json: {key}={value!r} is not supported (only square sizes)")
        value = value[0]
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{family} config.json: {key}={value!r} is not a positive integer")
    return value


def config_from_hf(hf: dict[str, Any]) -> ViTConfig:
    field = lambda key: names.read_field(hf, key, DEFAULTS, "ViT")
    return ViTConfig(
        hidden_size=field("hidden_size"),
        num_hidden_layers=field("num_hidden_layers"),
        num_attention_heads=field("num_attention_heads"),
        intermediate_size=field("intermediate_size"),
        mlp=names.gelu_activation(field("hidden_act"), "hidden_act", "ViT"),
        norm_eps=field("layer_norm_eps"),
        image_size=square(field("image_size"), "image_size", "ViT"),
        patch_size=square(field("patch_size"), "patch_size", "ViT"),
        num_channels=field("num_channels"),
        qkv_bias=field("qkv_bias"),
        attention_dropout=field("attention_probs_dropout_prob"),
        hidden_dropout=field("hidden_dropout_prob"),
    )


def state_dict_from_hf(state: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """HF names (bare or under `vit.`) -> ours; unknown names are kept so that `load_into` reports them."""
    bare = {k.removeprefix("vit."): t for k, t in state.items()}
    kept = {k: t for k, t in bare.items() if not k.startswith(IGNORED)}
    out = names.from_hf(kept, TABLE, cfg.num_hidden_layers, "ViT")
    if "embeddings.cls_token" in out:
        out["cls"] = out.pop("embeddings.cls_token")  # (1, 1, C), as ours
    if "embeddings.position_embeddings" in out:
        out["positions.weight"] = out.pop("embeddings.position_embeddings").squeeze(0)  # (1, T, C) -> (T, C)
    if "patch_embed.weight" in out:
        out["patch_embed.weight"] = out["patch_embed.weight"].flatten(1)  # (C, 3, p, p) -> (C, 3*p*p)
    return out
