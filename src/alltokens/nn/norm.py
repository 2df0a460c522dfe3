"""The two norms of the field: LayerNorm (GPT-2, BERT, ViT) and RMSNorm (Llama, Mistral, Qwen2)."""

from __future__ import annotations

from torch import nn

from alltokens.nn.config import TransformerConfig


def make_norm(cfg: TransformerConfig, size: int | None = None) -> nn.Module:
    size = size or cfg.hidden_size
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(size, eps=cfg.norm_eps)
    return nn.LayerNorm(size, eps=cfg.norm_eps, bias=cfg.norm_bias)
