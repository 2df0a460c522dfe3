"""Hugging Face CLIP checkpoints (`CLIPModel`, the layout of the public OpenAI and LAION ones) ->
`models.clip.CLIP`.

Both towers are pre-LayerNorm stacks of the same block, so one block table serves both (`BLOCK`), under
`vision_model.` and `text_model.` with their own depths. Besides the fused [q | k | v] and the
flattened patch conv (see `io.hf.vit`), the quirks are:

- vision: `pre_layrnorm` (sic) on the embedded tokens is our `embedding_norm`; `class_embedding` is a
  bare (C,) vector, our [CLS] is (1, 1, C); the patch conv has no bias. HF applies `post_layernorm` to
  the pooled [CLS] vector only, we apply it as the core's final norm to every token: the pooled vector,
  and so the image embedding, is the same, but our ViT's hidden states are normalised and HF's
  `last_hidden_state` is not.
- text: HF pools at the first `eos_token_id` of each row (at `argmax(input_ids)` for legacy configs
  with `eos_token_id == 2`, where the end-of-text token has the largest id); ours pools at the last real
  token of right-padded ids. These agree for text as CLIP's tokenizer makes it, which ends every row
  with its end-of-text token, and `eos_token_id` is therefore not kept.
- the temperature: the stored `logit_scale` tensor is what the model uses; `logit_scale_init_value`
  only seeds our `logit_scale_init` (used by `init_weights`). Our `scale()` clips exp(logit_scale) at
  `max_logit_scale` (100, the paper's clip) and transformers does not; the public checkpoints store
  log(100) itself, where both give 100.

Old config files leave fields out (or put them in `text_config_dict`/`vision_config_dict`, which
transformers merges over `text_config`/`vision_config`); missing ones take `CLIPTextConfig`'s and
`CLIPVisionConfig`'s defaults (the ViT-B/32 shape). Pixel statistics are OpenAI's (`IMAGE_MEAN`,
`IMAGE_STD`), which the public CLIP checkpoints' preprocessors use. The `position_ids` index buffers of
older files are dropped.
"""

from __future__ import annotations

from typing import Any

import torch

from alltokens.io.hf import names
from alltokens.io.hf.vit import square
from alltokens.models.clip import CLIPConfig, clip_text_config
from alltokens.models.vit import ViTConfig
from alltokens.nn.config import ConfigError

MODEL_TYPES = ("clip",)

BLOCK: names.Table = {
    "core.blocks.{i}.norm1": "encoder.layers.{i}.layer_norm1",
    "core.blocks.{i}.attn.qkv": tuple(f"encoder.layers.{{i}}.self_attn.{n}_proj" for n in "qkv"),
    "core.blocks.{i}.attn.proj": "encoder.layers.{i}.self_attn.out_proj",
    "core.blocks.{i}.norm2": "encoder.layers.{i}.layer_norm2",
    "core.blocks.{i}.mlp.fc": "encoder.layers.{i}.mlp.fc1",
    "core.blocks.{i}.mlp.proj": "encoder.layers.{i}.mlp.fc2",
}
VISION: names.Table = {
    **BLOCK,
    "patch_embed": "embeddings.patch_embedding",
    "positions": "embeddings.position_embedding",
    "embedding_norm": "pre_layrnorm",
    "core.norm": "post_layernorm",
}
TEXT: names.Table = {
    **BLOCK,
    "embed.tokens": "embeddings.token_embedding",
    "embed.positions": "embeddings.position_embedding",
    "core.norm": "final_layer_norm",
}
PROJECTIONS: names.Table = {"vision_proj": "visual_projection", "text_proj": "text_projection"}
IGNORED = ("embeddings.position_ids",)  # buffers of older files

IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]

# transformers' CLIPConfig / CLIPTextConfig / CLIPVisionConfig defaults
DEFAULTS: dict[str, Any] = {"projection_dim": 512, "logit_scale_init_value": 2.6592}
TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "attention_dropout": 0.0,
    "pad_token_id": 1,
}
VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "attention_dropout": 0.0,
}


def activation(act: str, family: str) -> str:
    """CLIP's `hidden_act`: OpenAI's quick GELU, or an exact/tanh GELU (some LAION checkpoints)."""
    return "quick_gelu" if act == "quick_gelu" else names.gelu_activation(act, "hidden_act", family)


def sub_config(hf: dict[str, Any], tower: str) -> dict[str, Any]:
    """`vision_config` or `text_config`, with the legacy `*_config_dict` merged over it as transformers does."""
    parts = [hf.get(f"{tower}_config") or {}, hf.get(f"{tower}_config_dict") or {}]
    if not all(isinstance(p, dict) for p in parts):
        raise ConfigError(f"CLIP config.json: {tower}_config must be an object")
    return {**parts[0], **parts[1]}


def vision_config_from_hf(hf: dict[str, Any]) -> ViTConfig:
    """A `vision_config` as our ViT: CLIP's switches (pre-norm on the embeddings, no patch bias)."""
    family = "CLIP vision"
    field = lambda key: names.read_field(hf, key, VISION_DEFAULTS, family)
    return ViTConfig(
        hidden_size=field("hidden_size"),
        num_hidden_layers=field("num_hidden_layers"),
        num_attention_heads=field("num_attention_heads"),
        intermediate_size=field("intermediate_size"),
        mlp=activation(field("hidden_act"), family),
        norm_eps=field("layer_norm_eps"),
        image_size=square(field("image_size"), "image_size", family),
        patch_size=square(field("patch_size"), "patch_size", family),
        num_channels=field("num_channels"),
        attention_dropout=field("attention_dropout"),
        patch_bias=False,
        embedding_norm=True,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )


def config_from_hf(hf: dict[str, Any]) -> CLIPConfig:
    text = sub_config(hf, "text")
    family = "CLIP text"
    field = lambda key: names.read_field(text, key, TEXT_DEFAULTS, family)
    vocab_size, pad = field("vocab_size"), field("pad_token_id")
    text_cfg = clip_text_config(
        vocab_size=vocab_size,
        hidden_size=field("hidden_size"),
        num_hidden_layers=field("num_hidden_layers"),
        num_attention_heads=field("num_attention_heads"),
        intermediate_size=field("intermediate_size"),
        mlp=activation(field("hidden_act"), family),
        norm_eps=field("layer_norm_eps"),
        max_position_embeddings=field("max_position_embeddings"),
        attention_dropout=field("attention_dropout"),
        # only marks the embedding row that training leaves alone; the attention mask does the padding
        pad_token_id=pad if isinstance(pad, int) and 0 <= pad < vocab_size else 0,
    )
    top = lambda key: names.read_field(hf, key, DEFAULTS, "CLIP")
    return CLIPConfig(
        vision=vision_config_from_hf(sub_config(hf, "vision")),
        text=text_cfg,
        projection_dim=top("projection_dim"),
        logit_scale_init=float(top("logit_scale_init_value")),
    )


def _under(table: names.Table, ours: str, theirs: str) -> names.Table:
    """`table` with our prefix on its keys and the HF prefix on its values."""
    add = lambda v: tuple(theirs + p for p in v) if isinstance(v, tuple) else theirs + v
    return {ours + k: add(v) for k, v in table.items()}


def state_dict_from_hf(state: dict[str, torch.Tensor], cfg: CLIPConfig) -> dict[str, torch.Tensor]:
    """HF `CLIPModel` names -> ours; unknown names are kept so that `load_into` reports them."""
    out = {k: t for k, t in state.items() if not k.endswith(IGNORED)}
    for table, layers in (
        (_under(VISION, "vision.", "vision_model."), cfg.vision.num_hidden_layers),
        (_under(TEXT, "text.", "text_model."), cfg.text.num_hidden_layers),
        (PROJECTIONS, 0),  # `logit_scale` is named as ours and passes through
    ):
        out = names.from_hf(out, table, layers, "CLIP")
    if "vision_model.embeddings.class_embedding" in out:
        cls = out.pop("vision_model.embeddings.class_embedding")
        out["vision.cls"] = cls.view(1, 1, -1)  # (C,) -> (1, 1, C)
    if "vision.patch_embed.weight" in out:
        out["vision.patch_embed.weight"] = out["vision.patch_embed.weight"].flatten(1)  # (C, 3*p*p)
    return out
