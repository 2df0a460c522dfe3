"""Rotary position embeddings (RoPE, Su et al. 2021) and the scaling variants real checkpoints use.

We use the "rotate half" layout of GPT-NeoX and Hugging Face Llama: the head dimension is split into two
halves that rotate as (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin). Positions are given per token
(B, T), so left-padded batches and packed sequences use the same table lookup. Images and video give
n-D positions (B, T, n) (row, col) or (frame, row, col): the D/2 frequencies are split into n groups,
group a rotating by coordinate a (the axial RoPE of Heo et al. 2024 and Qwen2-VL), so one attention
kernel serves every modality.

Shape notation: B batch, H heads, T tokens, D head dim.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def rope_inverse_frequencies(
    head_dim: int, theta: float, scaling: dict[str, Any] | None
) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (D/2,) and the attention scaling factor for cos/sin (1.0 except for YaRN)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    if not scaling:
        return inv_freq.float(), 1.0
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = float(scaling.get("factor", 1.0))
    if kind in ("default", None):
        return inv_freq.float(), 1.0
    if kind == "linear":  # position interpolation: positions / factor == frequencies / factor
        return (inv_freq / factor).float(), 1.0
    if kind == "llama3":  # Llama 3.1: low frequencies scaled by `factor`, high kept, smooth between
        low = scaling.get("low_freq_factor", 1.0)
        high = scaling.get("high_freq_factor", 4.0)
        old_len = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        low_wavelen, high_wavelen = old_len / low, old_len / high
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        is_mid = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(is_mid, mid, scaled).float(), 1.0
    if kind == "yarn":  # YaRN (Peng et al. 2023): NTK-by-parts interpolation + attention temperature
        old_len = scaling.get("original_max_position_embeddings")
        if old_len is None:
            raise ValueError("yarn rope_scaling needs original_max_position_embeddings")
        beta_fast, beta_slow = scaling.get("beta_fast") or 32.0, scaling.get("beta_slow") or 1.0

        def temperature(m: float) -> float:  # the paper's sqrt(1/t) = 0.1 ln(s) + 1, DeepSeek's m-scaled
            return 0.1 * m * math.log(factor) + 1.0 if factor > 1 else 1.0

        mscale = scaling.get("attention_factor")
        if mscale is None:
            m, m_all = scaling.get("mscale"), scaling.get("mscale_all_dim")
            mscale = temperature(m) / temperature(m_all) if m and m_all else temperature(1.0)

        def correction_dim(rotations: float) -> float:
            return head_dim * math.log(old_len / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        lo, hi = correction_dim(beta_fast), correction_dim(beta_slow)
        if scaling.get("truncate", True):  # the paper rounds the ramp's ends to whole dimensions
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, head_dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = ((torch.arange(head_dim // 2, dtype=torch.float64) - lo) / (hi - lo)).clamp(0, 1)
        extrapolation = 1 - ramp
        inv = (inv_freq / factor) * (1 - extrapolation) + inv_freq * extrapolation
        return inv.float(), float(mscale)
    raise ValueError(f"unsupported rope_scaling type {kind!r} (supported: linear, llama3, yarn)")


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables, looked up by integer positions (B, T) or n-D positions (B, T, n)."""

    def __init__(
        self,
        head_dim: int,
        max_positions: int,
        theta: float,
        scaling: dict[str, Any] | None = None,
        dims: int = 1,
    ):
        super().__init__()
        if head_dim % (2 * dims):
            raise ValueError(f"{dims}-D RoPE needs head_dim divisible by {2 * dims}, got {head_dim}")
        self.max_positions, self.dims = max_positions, dims
        inv_freq, mscale = rope_inverse_frequencies(head_dim // dims, theta, scaling)
        t = torch.arange(max_positions, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)  # (T_max, D/2n): the angles of one coordinate
        if dims > 1:  # looked up per coordinate, then laid out as [axis 0 | axis 1 | ...] twice
            self.register_buffer("cos", freqs.cos() * mscale, persistent=False)
            self.register_buffer("sin", freqs.sin() * mscale, persistent=False)
            return
        angles = torch.cat([freqs, freqs], dim=-1)  # (T_max, D)
        self.register_buffer("cos", angles.cos() * mscale, persistent=False)
        self.register_buffer("sin", angles.sin() * mscale, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, T) or (B, T, n) int -> cos, sin (B, 1, T, D) ready to broadcast over heads."""
        if self.dims == 1:
            return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)
        if positions.dim() != 3 or positions.shape[-1] != self.dims:
            raise ValueError(
                f"{self.dims}-D RoPE needs positions shaped (B, T, {self.dims}), got {tuple(positions.shape)}"
            )
        cos = self.cos[positions].flatten(-2)  # (B, T, n, D/2n) -> (B, T, D/2)
        sin = self.sin[positions].flatten(-2)
        return torch.cat([cos, cos], -1).unsqueeze(1), torch.cat([sin, sin], -1).unsqueeze(1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D) rotated by the per-position angles."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)
