"""Position-wise feed-forward: GELU (GPT-2, BERT, ViT), quick GELU (OpenAI CLIP) or SwiGLU (Llama,
Shazeer 2020).

SwiGLU's gate and up projections are one fused matrix `fc` of width 2I (gate first, then up): one
matmul instead of two, which matters for CPU decoding where every kernel launch shows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from alltokens.nn.config import TransformerConfig

LinearFactory = Callable[..., nn.Module]


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.kind = cfg.mlp
        width = 2 * cfg.mlp_size if cfg.mlp == "swiglu" else cfg.mlp_size
        self.fc = linear(cfg.hidden_size, width, bias=cfg.mlp_bias)
        self.proj = linear(cfg.mlp_size, cfg.hidden_size, bias=cfg.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)  # (B, T, I) or (B, T, 2I)
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        elif self.kind == "quick_gelu":  # the sigmoid approximation OpenAI's CLIP was trained with
            h = h * torch.sigmoid(1.702 * h)
        else:
            h = F.gelu(h, approximate="tanh" if self.kind == "gelu_tanh" else "none")
        return self.proj(h)
