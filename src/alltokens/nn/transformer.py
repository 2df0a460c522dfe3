"""The one transformer core: embeddings (B, T, C) in, hidden states (B, T, C) out.

Token tables and output heads live outside (in `models/`), so a VLM can splice image features into a
text stream, a DiT can feed patch embeddings, and an LM head can be tied or not. Positions are per token
(B, T); with a KV cache and no positions given, they continue from the cache length.

Shape notation: B batch, T tokens, S keys (cache + new), C width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from alltokens.nn.block import Block
from alltokens.nn.config import TransformerConfig
from alltokens.nn.kv_cache import KVCache
from alltokens.nn.mlp import LinearFactory
from alltokens.nn.norm import make_norm
from alltokens.nn.rope import RotaryEmbedding


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(Block(cfg, linear) for _ in range(cfg.num_hidden_layers))
        self.norm = make_norm(cfg) if cfg.final_norm else nn.Identity()
        self.rope = None
        if cfg.position_embedding == "rope":
            self.rope = RotaryEmbedding(
                cfg.head_size, cfg.max_position_embeddings, cfg.rope_theta, cfg.rope_scaling, cfg.rope_dims
            )

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        depth: int | None = None,
    ) -> torch.Tensor:
        """x (B, T, C); positions (B, T) int, or (B, T, n) for n-D RoPE; mask bool (B, 1, T, S), True =
        may attend. `depth` runs only the first `depth` blocks and skips the final norm: the features of
        an inner layer, which a VLM reads from its vision tower."""
        B, T, _ = x.shape
        rope = None
        if self.rope is not None:
            if positions is None and self.rope.dims > 1:
                raise ValueError(f"{self.rope.dims}-D RoPE needs positions (B, T, {self.rope.dims})")
            if positions is None:
                start = cache.length if cache is not None else 0
                positions = torch.arange(start, start + T, device=x.device).expand(B, T)
            rope = self.rope(positions)  # 2 x (B, 1, T, D)
        blocks = self.blocks if depth is None else self.blocks[:depth]
        for i, block in enumerate(blocks):
            x = block(x, rope, mask, cache, i, context, context_mask)
        if cache is not None:
            cache.advance(T)
        return self.norm(x) if depth is None else x

    def new_cache(
        self,
        batch_size: int,
        max_len: int,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> KVCache:
        p = next(self.parameters())
        cfg = self.cfg
        return KVCache(
            cfg.num_hidden_layers,
            batch_size,
            cfg.kv_heads,
            max_len,
            cfg.head_size,
            dtype or p.dtype,
            device or p.device,
        )

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """GPT-2 init: N(0, std) for matrices, zeros for biases, residual outputs scaled by 1/sqrt(2L)."""
        residual_std = std / math.sqrt(2 * self.cfg.num_hidden_layers)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                if "norm" in name and name.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()
            elif name.endswith("proj.weight"):
                p.normal_(0.0, residual_std)
            else:
                p.normal_(0.0, std)
