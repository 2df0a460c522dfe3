"""A decoder-only language model: token embedding -> causal core -> LM head.

GPT-2, Llama, Mistral, Qwen2 and our own presets are all this class with different `LMConfig` fields.

Shape notation: B batch, T tokens, C width, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from alltokens.nn import Embeddings, KVCache, Transformer, TransformerConfig
from alltokens.nn.mlp import LinearFactory


@dataclass
class LMConfig(TransformerConfig):
    kind: Literal["lm"] = "lm"
    vocab_size: int = 512
    tie_word_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None


class LM(nn.Module):
    def __init__(self, cfg: LMConfig, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.cfg = cfg
        self.embed = Embeddings(cfg, cfg.vocab_size)
        self.core = Transformer(cfg, linear)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.embed.tokens.weight

    def hidden(
        self,
        ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) or embeds (B, T, C) -> final hidden states (B, T, C)."""
        if positions is None and cache is not None and cache.length and self.embed.positions is not None:
            T = (ids if embeds is None else embeds).shape[1]
            positions = torch.arange(cache.length, cache.length + T, device=self.lm_head.weight.device)
            positions = positions.expand((ids if embeds is None else embeds).shape[0], T)
        x = self.embed(ids, positions, embeds=embeds)  # (B, T, C)
        return self.core(x, positions, mask, cache)

    def forward(
        self,
        ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        embeds: torch.Tensor | None = None,
        last_only: bool = False,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V); (B, 1, V) with `last_only` (decoding needs only the next token); (N, V)
        at the N positions a bool (B, T) `select` marks (training on answers only needs only theirs:
        the head and its softmax over the vocabulary are the widest layer)."""
        h = self.hidden(ids, positions, mask, cache, embeds)
        if last_only:
            h = h[:, -1:]
        elif select is not None:
            h = h[select]  # (N, C)
        return self.lm_head(h)

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        return self.core.new_cache(batch_size, max_len)

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """All initialisation in one place: the core's GPT-2 scheme, embeddings N(0, std)."""
        self.core.init_weights(std)
        for p in self.embed.parameters():
            p.normal_(0.0, std)
        if not self.cfg.tie_word_embeddings:
            self.lm_head.weight.normal_(0.0, std)
