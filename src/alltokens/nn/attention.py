"""Multi-head attention for every family: MHA, GQA and MQA, self- and cross-attention.

All attention goes through `torch.nn.functional.scaled_dot_product_attention`, which picks a fused
kernel. Masks are boolean with True meaning "may attend", shaped (B, 1, T, S) or anything broadcastable;
`None` means causal or full according to the config. q, k and v come from one fused projection `qkv`
laid out as [q (H*D) | k (Hk*D) | v (Hk*D)].

Shape notation: B batch, T query tokens, S key tokens, C width, H query heads, Hk key/value heads,
D head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from alltokens.nn.config import TransformerConfig
from alltokens.nn.kv_cache import KVCache
from alltokens.nn.mlp import LinearFactory
from alltokens.nn.rope import apply_rope


def causal_mask(T: int, S: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(T, S) bool: query t (the last T of S positions) sees keys up to and including itself."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


class Attention(nn.Module):
    """Self-attention with an optional KV cache and rotary positions."""

    def __init__(self, cfg: TransformerConfig, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.kv_heads, cfg.head_size
        self.causal = cfg.causal
        self.dropout = cfg.attention_dropout
        qkv_width = (self.n_head + 2 * self.n_kv) * self.head_dim
        self.qkv = linear(cfg.hidden_size, qkv_width, bias=cfg.qkv_bias)
        self.proj = linear(self.n_head * self.head_dim, cfg.hidden_size, bias=cfg.out_bias)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hk, D = self.n_head, self.n_kv, self.head_dim
        q, k, v = self.qkv(x).split([H * D, Hk * D, Hk * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hk, D).transpose(1, 2)  # (B, Hk, T, D)
        v = v.view(B, T, Hk, D).transpose(1, 2)  # (B, Hk, T, D)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(layer, k, v)  # (B, Hk, S, D), S = past + T
        is_causal = False
        if mask is None and self.causal and T > 1:
            if past == 0:
                is_causal = True
            else:
                mask = causal_mask(T, past + T, x.device)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            enable_gqa=Hk != H,
        )  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, H * D))


class CrossAttention(nn.Module):
    """Queries from the stream, keys and values from a context (text for diffusion, audio for ASR)."""

    def __init__(self, cfg: TransformerConfig, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.kv_heads, cfg.head_size
        self.dropout = cfg.attention_dropout
        context_size = cfg.context_size or cfg.hidden_size
        self.q = linear(cfg.hidden_size, self.n_head * self.head_dim, bias=cfg.qkv_bias)
        self.kv = linear(context_size, 2 * self.n_kv * self.head_dim, bias=cfg.qkv_bias)
        self.proj = linear(self.n_head * self.head_dim, cfg.hidden_size, bias=cfg.out_bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, T, _ = x.shape
        S = context.shape[1]
        H, Hk, D = self.n_head, self.n_kv, self.head_dim
        q = self.q(x).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k, v = self.kv(context).view(B, S, 2, Hk, D).permute(2, 0, 3, 1, 4)  # 2 x (B, Hk, S, D)
        if context_mask is not None and context_mask.dim() == 2:  # (B, S) padding -> (B, 1, 1, S)
            context_mask = context_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=context_mask,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=Hk != H,
        )  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, H * D))
