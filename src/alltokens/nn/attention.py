"""Multi-head attention for every family: MHA, GQA and MQA, self- and cross-attention.

All attention goes through `attend`: `torch.nn.functional.scaled_dot_product_attention`, which picks a
fused kernel, except where that kernel is measurably slow (see `explicit_is_faster`). Masks are boolean
with True meaning "may attend", shaped (B, 1, T, S) or anything broadcastable; `None` means causal or
full according to the config. q, k and v come from one fused projection `qkv` laid out as
[q (H*D) | k (Hk*D) | v (Hk*D)].

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

EXPLICIT_MAX_SCORES = 512 * 512  # T * S up to which written-out attention wins (see explicit_is_faster)


def causal_mask(T: int, S: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(T, S) bool: query t (the last T of S positions) sees keys up to and including itself."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def segment_mask(segments: torch.Tensor) -> torch.Tensor:
    """segments (B, T) int -> (B, 1, T, T) bool: query t sees keys up to itself in its own segment.

    Several sequences packed into one row (each a run of equal ids) then attend exactly as if each had
    a row of its own, and a batch of short sequences wastes no compute on padding."""
    T = segments.shape[1]
    same = segments[:, :, None] == segments[:, None, :]  # (B, T, T)
    return (same & causal_mask(T, T, segments.device))[:, None]


def segment_positions(segments: torch.Tensor) -> torch.Tensor:
    """segments (B, T) int, each segment one contiguous run -> (B, T) each token's index within its
    segment: the positions a packed sequence would have in a row of its own."""
    B, T = segments.shape
    index = torch.arange(T, device=segments.device).expand(B, T)  # (B, T)
    starts = torch.ones_like(segments, dtype=torch.bool)  # (B, T) True where a segment begins
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    first = torch.where(starts, index, 0).cummax(dim=1).values  # (B, T) index of the segment's first token
    return index - first


def explicit_is_faster(q: torch.Tensor, S: int) -> bool:
    """Whether to write attention out as two matmuls and a softmax instead of calling SDPA.

    PyTorch's fused CPU kernel is slow to differentiate in bfloat16: for T = S = 64 (B 12, H 4, D 32)
    its forward + backward took 7.9 ms against 1.8 ms written out, which made it the largest cost of a
    bf16-autocast training step of nanoGPT's baby Shakespeare model; at T = S = 256 it still lost (34 vs
    23 ms), and at 1024 they were even while the explicit scores take T * S memory (torch 2.13, AVX-512
    BF16 CPU; `bench/train_shakespeare.py`). Forward-only calls and float16 (no fast CPU matmul) are
    left to SDPA.
    """
    return (
        q.device.type == "cpu"
        and q.dtype == torch.bfloat16
        and q.requires_grad
        and q.shape[-2] * S <= EXPLICIT_MAX_SCORES
    )


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D), masked) v: q (B, H, T, D), k and v (B, Hk, S, D) -> (B, H, T, D).

    SDPA's contract with `enable_gqa` (query head h reads key/value head h // (H / Hk)), computed by
    SDPA or, where that is slow, by `explicit_attention`.
    """
    if explicit_is_faster(q, k.shape[2]):
        return explicit_attention(q, k, v, mask, is_causal, dropout_p)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, enable_gqa=k.shape[1] != q.shape[1]
    )


def explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """`attend` as two matmuls and a softmax. `is_causal` needs T == S (how the callers use it); rows
    whose keys are all masked out give zeros, as SDPA's do."""
    H, Hk, S = q.shape[1], k.shape[1], k.shape[2]
    if Hk != H:
        k, v = k.repeat_interleave(H // Hk, dim=1), v.repeat_interleave(H // Hk, dim=1)  # (B, H, S, D)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, H, T, S)
    if is_causal:
        scores = scores.masked_fill(~causal_mask(q.shape[2], S, q.device), float("-inf"))
    elif mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.softmax(dim=-1)  # (B, H, T, S)
    if mask is not None:
        probs = probs.masked_fill(~mask, 0.0)  # rows with no visible key: NaN -> 0
    if dropout_p:
        probs = F.dropout(probs, dropout_p)
    return probs @ v  # (B, H, T, D)


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
        dropout = self.dropout if self.training else 0.0
        y = attend(q, k, v, mask, is_causal, dropout)  # (B, H, T, D)
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
        y = attend(q, k, v, context_mask, dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, H * D))
