"""CLIP (Radford et al. 2021): an image tower and a text tower meeting in one embedding space.

image: ViT -> pooled vector -> linear projection; text: the shared core as a causal encoder pooled at
its last real token (the end-of-text token) -> linear projection. Both are L2-normalised, and a
learned temperature `logit_scale` (stored as its log, as in the paper) sharpens the cosine
similarities into logits for the contrastive loss (`train.objectives.contrastive`).

Shape notation: B images, K texts, C tower widths, D the shared embedding width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from alltokens.models.encoder import Encoder, EncoderConfig
from alltokens.models.vit import ViT, ViTConfig
from alltokens.nn import Config, ConfigError


def clip_text_config(**overrides) -> EncoderConfig:
    """The text tower's switches: pre-norm, causal, learned positions, no token types, last-token pooling."""
    fields = dict(
        vocab_size=512,
        type_vocab_size=0,
        embedding_norm=False,
        norm_position="pre",
        final_norm=True,
        norm_eps=1e-5,
        causal=True,
        pooling="last",
        normalize=False,
        max_position_embeddings=77,
    )
    return EncoderConfig(**{**fields, **overrides})


@dataclass
class CLIPConfig(Config):
    kind: Literal["clip"] = "clip"
    vision: ViTConfig = field(default_factory=ViTConfig)
    text: EncoderConfig = field(default_factory=clip_text_config)
    projection_dim: int = 512
    logit_scale_init: float = math.log(1 / 0.07)  # the paper's initial temperature 0.07
    max_logit_scale: float = 100.0  # logits = min(exp(logit_scale), this) * cosine (the paper's clip)

    def __post_init__(self) -> None:
        if self.projection_dim <= 0:
            raise ConfigError(f"projection_dim must be positive, got {self.projection_dim}")
        if self.text.pooling != "last" or not self.text.causal or self.text.normalize:
            raise ConfigError("CLIP's text tower is causal, pooled at its last token and not normalised")


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.vision = ViT(cfg.vision)
        self.text = Encoder(cfg.text)
        self.vision_proj = nn.Linear(cfg.vision.hidden_size, cfg.projection_dim, bias=False)
        self.text_proj = nn.Linear(cfg.text.hidden_size, cfg.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(cfg.logit_scale_init))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, H, W) -> unit image embeddings (B, D)."""
        return F.normalize(self.vision_proj(self.vision.embed(pixels)), dim=-1)

    def encode_text(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (K, T) right-padded, attention_mask (K, T) -> unit text embeddings (K, D)."""
        return F.normalize(self.text_proj(self.text.embed_ids(ids, attention_mask)), dim=-1)

    def scale(self) -> torch.Tensor:
        """The temperature as a multiplier: exp(logit_scale), clipped at `max_logit_scale`."""
        return self.logit_scale.exp().clamp(max=self.cfg.max_logit_scale)

    def forward(
        self, pixels: torch.Tensor, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> image embeddings (B, D), text embeddings (K, D), and the scale (0-d)."""
        return self.encode_image(pixels), self.encode_text(ids, attention_mask), self.scale()

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        self.vision.init_weights(std)
        self.text.init_weights(std)
        for proj in (self.vision_proj, self.text_proj):
            proj.weight.normal_(0.0, proj.in_features**-0.5)
        self.logit_scale.fill_(self.cfg.logit_scale_init)
