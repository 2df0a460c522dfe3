"""Vision Transformer (Dosovitskiy et al. 2020): patches are tokens.

patchify -> linear -> (+ [CLS]) -> (+ positions) -> the core with no causal mask -> [CLS], mean or max
pool (or "max_grid", below).
The patch projection is a `Linear` on `tokenizers.patches.patchify`, which equals the usual stride-p
`Conv2d` (its weight reshaped), so Hugging Face ViT and CLIP vision towers load by a reshape. With
`patch_features` "shape_colour" the projection reads each patch's outline and colours apart instead
(`tokenizers.patches.shape_colour_patches`), a prior for scenes of flat-coloured objects; "shape" keeps
only the outline (contrast map and coverage) and "colour" only the two colours, so a tower sees one of
the two and no feature of it can tie a colour to a shape (the two towers of the 'tiny-long' VLM:
`train/recipes/vlm.py`). `normalise_outline` moves and scales each patch's contrast map to a standard
place and size first, so a linear projection reads an outline alike wherever it sits and however large. Positions are a learned table over the fixed grid (ViT, CLIP) or 2-D rotary (row, col) positions, which carry no
table and so work at any grid size.

Pooling "max_grid" is max pooling plus a linear readout of the whole grid of patch tokens, each
patch with its own weights (a Linear on the flattened grid, N*C*C parameters: meant for small grids).
Why: a max over patches keeps what is there but not where, so two scenes with the same objects in
different cells pool alike; the readout keeps each cell apart. It starts at zero, so training starts
as plain max pooling (a readout alone, like [CLS] or mean pooling, left every image embedding alike and
a contrastive loss at log(batch): see `train/recipes/clip.py`).

`ViTConfig` covers both families' switches: CLIP adds a LayerNorm before the blocks (`embedding_norm`),
has no bias on the patch projection and uses quick GELU.

Shape notation: B batch, N patches, T = N (+1 with [CLS]) tokens, C width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from alltokens.nn import ConfigError, Transformer, TransformerConfig
from alltokens.nn.mlp import LinearFactory
from alltokens.tokenizers.patches import patch_grid, patchify, shape_colour_patches


@dataclass
class ViTConfig(TransformerConfig):
    kind: Literal["vit"] = "vit"
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    cls_token: bool = True  # a learned [CLS] token first; pooling "cls" reads it
    # "max" over patch tokens picks out small objects from the first steps; mean dilutes them (recipes/clip.py);
    # "max_grid" adds a per-patch readout that keeps where they are (module docstring)
    pooling: Literal["cls", "mean", "max", "max_grid"] = "cls"
    patch_bias: bool = True  # bias on the patch projection (ViT yes, CLIP no)
    # what the patch projection reads: the patch's pixels, or its outline apart from its colours
    # (`tokenizers.patches.shape_colour_patches`: composes colour x shape pairs never seen together)
    # ("shape" or "colour": only that half of it)
    patch_features: Literal["pixels", "shape_colour", "shape", "colour"] = "pixels"
    contrast_floor: float = 0.3  # all but pixels: the colour distance below which a patch counts as empty
    contrast_noise: float = 0.0  # all but pixels: subtracted from every colour distance (pixel noise -> 0)
    # "shape" and "shape_colour": move and scale each patch's contrast map to a standard place and size, so
    # an outline reads alike wherever it sits in its patch and however large (`tokenizers.patches.normalise_outlines`)
    normalise_outline: bool = False
    embedding_norm: bool = False  # LayerNorm on the embedded tokens before the blocks (CLIP's pre_layrnorm)
    # pixel normalisation the tower was trained with: x = (rgb / 255 - mean) / std
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    # the core's switches, with ViT's values
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-6
    mlp: Literal["gelu", "gelu_tanh", "quick_gelu", "swiglu"] = "gelu"
    qkv_bias: bool = True
    out_bias: bool = True
    mlp_bias: bool = True
    position_embedding: Literal["rope", "learned", "none"] = "learned"
    causal: bool = False

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.position_embedding == "rope" and self.rope_dims != 2:
            raise ConfigError("a ViT with rotary positions needs rope_dims = 2 (row, col)")
        if self.position_embedding == "rope":  # rows and columns, +1 for [CLS] at (0, 0)
            self.max_position_embeddings = max(self.max_position_embeddings, self.grid + 1)
        if self.position_embedding == "learned":  # one table row per token, none spare
            self.max_position_embeddings = self.num_tokens
        super().__post_init__()
        if self.causal:
            raise ConfigError("a ViT is bidirectional: causal must be false")
        if self.patch_features != "pixels" and not self.contrast_floor > 0:
            raise ConfigError(f"contrast_floor must be > 0, got {self.contrast_floor}")
        if self.contrast_noise < 0:
            raise ConfigError(f"contrast_noise must be >= 0, got {self.contrast_noise}")
        if self.normalise_outline and self.patch_features not in ("shape", "shape_colour"):
            raise ConfigError(
                f"normalise_outline resamples contrast maps, which patch_features {self.patch_features!r} does not "
                "read: use 'shape' or 'shape_colour'"
            )
        if self.pooling == "cls" and not self.cls_token:
            raise ConfigError("pooling 'cls' needs cls_token = true")
        if len(self.image_mean) != self.num_channels or len(self.image_std) != self.num_channels:
            raise ConfigError(f"image_mean and image_std need {self.num_channels} values each")

    @property
    def patch_dim(self) -> int:
        """Inputs of the patch projection per patch."""
        return sum(stop - start for start, stop in self.patch_parts)

    @property
    def patch_parts(self) -> list[tuple[int, int]]:
        """The slices of `shape_colour_patches`' vector (or of the raw pixels) the projection reads."""
        p2, C = self.patch_size * self.patch_size, self.num_channels
        return {
            "pixels": [(0, C * p2)],
            "shape_colour": [(0, p2 + 2 * C + 1)],
            "shape": [(0, p2), (p2 + 2 * C, p2 + 2 * C + 1)],  # contrast map, coverage
            "colour": [(p2, p2 + 2 * C)],  # foreground, background
        }[self.patch_features]

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def num_tokens(self) -> int:
        return self.num_patches + int(self.cls_token)


class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.cfg = cfg
        C = cfg.hidden_size
        self.patch_embed = nn.Linear(cfg.patch_dim, C, bias=cfg.patch_bias)
        self.cls = nn.Parameter(torch.zeros(1, 1, C)) if cfg.cls_token else None
        self.positions = nn.Embedding(cfg.num_tokens, C) if cfg.position_embedding == "learned" else None
        self.embedding_norm = nn.LayerNorm(C, eps=cfg.norm_eps) if cfg.embedding_norm else None
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.grid_readout = (
            nn.Linear(cfg.num_patches * C, C, bias=False) if cfg.pooling == "max_grid" else None
        )
        self.core = Transformer(cfg, linear)
        grid = patch_grid(cfg.grid, cfg.grid)  # (N, 2)
        if cfg.cls_token:  # [CLS] sits at (0, 0); the patches from (1, 1)
            grid = torch.cat([torch.zeros(1, 2, dtype=torch.long), grid + 1])
        self.register_buffer("grid_positions", grid, persistent=False)  # (T, 2)

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, H, W) normalised -> embedded input tokens (B, T, C)."""
        cfg = self.cfg
        if pixels.dim() != 4 or tuple(pixels.shape[1:]) != (cfg.num_channels, cfg.image_size, cfg.image_size):
            raise ValueError(
                f"this ViT takes (B, {cfg.num_channels}, {cfg.image_size}, {cfg.image_size}) pixels, "
                f"got {tuple(pixels.shape)}"
            )
        if cfg.patch_features == "pixels":
            patches = patchify(pixels, cfg.patch_size)  # (B, N, C*p*p)
        else:
            features = shape_colour_patches(  # (B, N, p*p+2C+1)
                pixels, cfg.patch_size, cfg.contrast_floor, cfg.normalise_outline, cfg.contrast_noise
            )
            patches = torch.cat([features[..., a:b] for a, b in cfg.patch_parts], dim=-1)  # (B, N, patch_dim)
        x = self.patch_embed(patches)  # (B, N, C)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)  # (B, T, C)
        if self.positions is not None:
            x = x + self.positions.weight
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        return self.dropout(x)

    def forward(self, pixels: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """pixels (B, 3, H, W) -> hidden states (B, T, C); `depth` stops after that many blocks (no
        final norm): LLaVA reads its image features from the second-to-last layer."""
        x = self.tokens(pixels)
        positions = None
        if self.core.rope is not None:
            positions = self.grid_positions.expand(x.shape[0], -1, -1)  # (B, T, 2)
        return self.core(x, positions=positions, depth=depth)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, C) -> (B, C): the [CLS] token, or the mean or max over patch tokens (plus, for
        "max_grid", the grid readout, scaled by 1/sqrt(N) like a sum of N terms)."""
        if self.cfg.pooling == "cls":
            return hidden[:, 0]
        patches = hidden[:, int(self.cfg.cls_token) :]  # (B, N, C)
        if self.cfg.pooling == "mean":
            return patches.mean(dim=1)
        pooled = patches.amax(dim=1)  # (B, C)
        if self.grid_readout is not None:
            pooled = pooled + self.grid_readout(patches.flatten(1)) / self.cfg.num_patches**0.5
        return pooled

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, H, W) -> pooled image vectors (B, C)."""
        return self.pool(self(pixels))

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """The core's init; N(0, std) for the patch projection, [CLS] and the position table; zero for
        the grid readout (training starts as max pooling)."""
        self.core.init_weights(std)
        self.patch_embed.weight.normal_(0.0, std)
        if self.patch_embed.bias is not None:
            self.patch_embed.bias.zero_()
        for p in (self.cls, None if self.positions is None else self.positions.weight):
            if p is not None:
                p.normal_(0.0, std)
        if self.embedding_norm is not None:
            self.embedding_norm.reset_parameters()
        if self.grid_readout is not None:
            self.grid_readout.weight.zero_()
