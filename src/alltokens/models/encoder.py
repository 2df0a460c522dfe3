"""A text encoder: token embedding -> core -> pooling, for sentence vectors.

BERT, MiniLM and sentence-transformers models are this class, and so is CLIP's text tower (pre-norm,
causal, no token types, pooled at the last real token, which is its end-of-text token). The defaults of `EncoderConfig` are
BERT's switches, so an HF `config.json` maps onto it by renaming a few fields: post-norm blocks
(x = norm(x + f(x))) with no final norm, learned absolute positions plus token types and a LayerNorm on
the embeddings, exact (erf) GELU, and biases on every linear and norm.

Padding is on the right and hidden by a (B, 1, 1, T) key mask: padded queries still compute (and are
ignored by pooling), which keeps every row's attention finite.

Shape notation: B batch, T tokens, C width, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from alltokens.nn import ConfigError, Embeddings, Transformer, TransformerConfig
from alltokens.nn.attention import causal_mask
from alltokens.nn.mlp import LinearFactory


@dataclass
class EncoderConfig(TransformerConfig):
    kind: Literal["encoder"] = "encoder"
    vocab_size: int = 30522
    type_vocab_size: int = 2  # BERT's sentence A / sentence B embeddings; 0 = none
    pad_token_id: int = 0
    # mean over real tokens (sentence-transformers), the first token ([CLS]) or the last real one (CLIP)
    pooling: Literal["mean", "cls", "last"] = "mean"
    embedding_norm: bool = True  # BERT's LayerNorm on the summed embeddings
    normalize: bool = True  # unit-length sentence vectors, so a dot product is the cosine
    # BERT's values of the core's switches
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-12
    norm_position: Literal["pre", "post"] = "post"
    final_norm: bool = False
    mlp: Literal["gelu", "gelu_tanh", "quick_gelu", "swiglu"] = "gelu"
    qkv_bias: bool = True
    out_bias: bool = True
    mlp_bias: bool = True
    position_embedding: Literal["rope", "learned", "none"] = "learned"
    max_position_embeddings: int = 512
    causal: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pooling not in ("mean", "cls", "last"):
            raise ConfigError(f"pooling must be 'mean', 'cls' or 'last', got {self.pooling!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id {self.pad_token_id} is outside the vocabulary {self.vocab_size}")


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.cfg = cfg
        self.embed = Embeddings(
            cfg,
            cfg.vocab_size,
            cfg.type_vocab_size,
            embedding_norm=cfg.embedding_norm,
            padding_idx=cfg.pad_token_id,
        )
        self.core = Transformer(cfg, linear)

    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T), attention_mask (B, T) bool (True = real token, padding on the right) -> hidden
        states (B, T, C)."""
        x = self.embed(ids, token_type_ids=token_type_ids)  # (B, T, C)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
            if self.cfg.causal:
                mask = mask & causal_mask(ids.shape[1], ids.shape[1], ids.device)  # (B, 1, T, T)
        return self.core(x, mask=mask)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden (B, T, C) -> (B, C): the mean over real tokens, the first ([CLS]) or the last real one."""
        if self.cfg.pooling == "cls":
            return hidden[:, 0]
        if self.cfg.pooling == "last":
            if attention_mask is None:
                return hidden[:, -1]
            last = attention_mask.long().sum(dim=1).clamp(min=1) - 1  # (B,)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        if attention_mask is None:
            return hidden.mean(dim=1)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def embed_ids(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) -> sentence vectors (B, C): pooled, and unit length when `cfg.normalize`."""
        v = self.pool(self(ids, attention_mask, token_type_ids), attention_mask)  # (B, C)
        return F.normalize(v, dim=-1) if self.cfg.normalize else v

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """BERT init: N(0, std) for matrices and embedding tables, ones/zeros for norms and biases."""
        self.core.init_weights(std)
        for name, p in self.embed.named_parameters():
            if name == "norm.weight":
                p.fill_(1.0)
            elif name == "norm.bias":
                p.zero_()
            else:
                p.normal_(0.0, std)
        self.embed.tokens.weight[self.cfg.pad_token_id].zero_()  # nn.Embedding's padding_idx convention
