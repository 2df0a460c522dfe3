"""Thin compositions of the core. `MODEL_KINDS` maps a config `kind` to (config class, model class)."""

from __future__ import annotations

from typing import Any

from torch import nn

from alltokens.models.clip import CLIP, CLIPConfig
from alltokens.models.encoder import Encoder, EncoderConfig
from alltokens.models.lm import LM, LMConfig
from alltokens.models.vit import ViT, ViTConfig
from alltokens.models.vlm import VLM, VLMConfig
from alltokens.nn.config import ConfigError

MODEL_KINDS: dict[str, tuple[type, type]] = {
    "lm": (LMConfig, LM),
    "encoder": (EncoderConfig, Encoder),
    "vit": (ViTConfig, ViT),
    "clip": (CLIPConfig, CLIP),
    "vlm": (VLMConfig, VLM),
}


def config_from_dict(data: dict[str, Any]) -> Any:
    kind = data.get("kind")
    if kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; known: {', '.join(sorted(MODEL_KINDS))}")
    return MODEL_KINDS[kind][0].from_dict(data)


def build_model(cfg: Any) -> nn.Module:
    return MODEL_KINDS[cfg.kind][1](cfg)
