"""One transformer block: self-attention, optional cross-attention, MLP; pre- or post-norm."""

from __future__ import annotations

import torch
from torch import nn

from alltokens.nn.attention import Attention, CrossAttention
from alltokens.nn.config import TransformerConfig
from alltokens.nn.kv_cache import KVCache
from alltokens.nn.mlp import MLP, LinearFactory
from alltokens.nn.norm import make_norm


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.pre_norm = cfg.norm_position == "pre"
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg, linear)
        if cfg.cross_attention:
            self.norm_cross = make_norm(cfg)
            self.cross_attn = CrossAttention(cfg, linear)
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg, linear)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C)."""
        attend = lambda h: self.attn(h, rope, mask, cache, layer)  # noqa: E731
        x = self._residual(x, attend, self.norm1)
        if context is not None:
            x = self._residual(x, lambda h: self.cross_attn(h, context, context_mask), self.norm_cross)
        return self._residual(x, self.mlp, self.norm2)

    def _residual(self, x: torch.Tensor, f, norm: nn.Module) -> torch.Tensor:
        if self.pre_norm:
            return x + self.dropout(f(norm(x)))
        return norm(x + self.dropout(f(x)))
