"""Token embeddings with the optional extras families add: learned absolute positions (GPT-2, BERT),
token types and an embedding LayerNorm (BERT). RoPE models use the token table alone."""

from __future__ import annotations

import torch
from torch import nn

from alltokens.nn.config import TransformerConfig


class Embeddings(nn.Module):
    def __init__(
        self,
        cfg: TransformerConfig,
        vocab_size: int,
        type_vocab_size: int = 0,
        embedding_norm: bool = False,
        padding_idx: int | None = None,
    ):
        super().__init__()
        C = cfg.hidden_size
        self.tokens = nn.Embedding(vocab_size, C, padding_idx=padding_idx)
        self.positions = None
        if cfg.position_embedding == "learned":
            self.positions = nn.Embedding(cfg.max_position_embeddings, C)
        self.token_types = nn.Embedding(type_vocab_size, C) if type_vocab_size else None
        self.norm = nn.LayerNorm(C, eps=cfg.norm_eps) if embedding_norm else None
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(
        self,
        ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) -> (B, T, C); `embeds` (B, T, C) replaces the token lookup (spliced inputs)."""
        x = self.tokens(ids) if embeds is None else embeds
        if self.positions is not None:
            if positions is None:
                positions = torch.arange(x.shape[1], device=x.device).expand(x.shape[:2])
            x = x + self.positions(positions)
        if self.token_types is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
            x = x + self.token_types(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)
