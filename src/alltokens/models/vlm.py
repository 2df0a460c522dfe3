"""A LLaVA-style vision-language model (Liu et al. 2023): ViT -> MLP projector -> the LM's token stream.

An image becomes K vectors of the LM's width: the vision tower's hidden states at an inner layer
(`feature_layer`, LLaVA's second-to-last), patch tokens only (`drop_cls`), optionally averaged over
`pool` x `pool` blocks of neighbouring patches, then a 2-layer MLP with GELU (LLaVA-1.5's projector).
Those vectors replace, in order, the `<|image|>` placeholder tokens of the prompt (`image_token_id`),
and the LM runs on the spliced embeddings. Everything after the projector is the plain `LM`.

A second tower (`second_vision`) fuses its features with the first's, patch by patch along the
channels, before the projector (Prismatic VLMs, Karamcheti et al. 2024; the mixture of features of
Tong et al. 2024, "Eyes Wide Shut"): one tower's features can miss what another's hold. Both towers
see the same pixels, so they must agree on image size, patch grid, [CLS] and pixel normalisation.
`tower_fusion` says how the projector joins them: one MLP on both ("channels"), a sum of one part per
tower ("sum"), or one token per tower and patch ("tokens"); see `Projector`.

Why the features are passed around flat, (M, C) for all images of a batch: the number of tokens an
image turns into is decided by whoever builds the prompt, which writes that many placeholders. With
AnyRes tiling (`max_tiles` > 1, LLaVA-NeXT) an image is several encoder inputs, tiles of the tower's
size plus an overview (`VLMConfig.layout`, `tokenizers.tiling`), each encoded by `image_tokens` into K
tokens and concatenated; with tiling off (the default) it is one input of K tokens. Nothing here
changes between the two: `image_tokens` and `splice` only see encoder inputs and placeholders.
`max_image_tokens` is the default budget per image, which a request may override.

Generation goes through the shared engine (`generate.engine.generate_ids`): `with_images` binds one
request's features to the model, the prefill (empty cache) splices them in, and every later step is a
plain LM step on the cache. There is no second decoding loop.

Shape notation: N encoder images (whole images or tiles), K tokens per encoder image, M image tokens in
a batch, B batch, T tokens, C width (Cv the vision tower's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from alltokens.models.lm import LM, LMConfig
from alltokens.models.vit import ViT, ViTConfig
from alltokens.nn import Config, ConfigError, KVCache
from alltokens.tokenizers.patches import pool_patches
from alltokens.tokenizers.tiling import TileLayout, choose_layout, tokens_per_tile


@dataclass
class VLMConfig(Config):
    kind: Literal["vlm"] = "vlm"
    vision: ViTConfig = field(default_factory=ViTConfig)
    second_vision: ViTConfig | None = None  # a tower whose features join the first's (module docstring)
    lm: LMConfig = field(default_factory=LMConfig)
    image_token_id: int = 0  # the `<|image|>` placeholder id in the LM's vocabulary
    feature_layer: int = -2  # which block's output the features are: -1 the last, -2 LLaVA's choice
    drop_cls: bool = True  # patch tokens only (LLaVA); False keeps [CLS] as the first image token
    pool: int = 1  # average each pool x pool block of patch tokens (2: 4x fewer tokens); 1 = off
    max_tiles: int = 1  # AnyRes: an image becomes up to this many tiles, plus an overview; 1 = off
    max_image_tokens: int | None = None  # the default image-token budget per image; None = no cap
    feature_norm: bool = False  # LayerNorm each tower's features before the projector (see `Projector`)
    # two towers: "channels" one projector on both towers' features side by side; "sum" each projector
    # hidden unit reads one tower and the token adds their parts; "tokens" one token per tower and
    # patch, each tower with its own projector (see `Projector`)
    tower_fusion: Literal["channels", "sum", "tokens"] = "channels"

    def __post_init__(self) -> None:
        if not 0 <= self.image_token_id < self.lm.vocab_size:
            raise ConfigError(
                f"image_token_id {self.image_token_id} is outside the LM's vocabulary (0..{self.lm.vocab_size - 1})"
            )
        for tower in self.towers:
            L = tower.num_hidden_layers
            if not -L <= self.feature_layer <= -1:
                raise ConfigError(
                    f"feature_layer must be in -{L}..-1 for a {L}-layer vision tower, got {self.feature_layer}"
                )
        if self.tower_fusion not in ("channels", "sum", "tokens"):
            raise ConfigError(f"tower_fusion must be channels, sum or tokens, got {self.tower_fusion!r}")
        if self.tower_fusion != "channels" and self.second_vision is None:
            raise ConfigError(f"tower_fusion {self.tower_fusion!r} needs a second_vision tower")
        if self.second_vision is not None:
            a, b = self.vision, self.second_vision
            for name in ("image_size", "patch_size", "num_channels", "cls_token", "image_mean", "image_std"):
                if getattr(a, name) != getattr(b, name):
                    raise ConfigError(
                        f"the two vision towers see the same pixels but differ in {name}: "
                        f"{getattr(a, name)} and {getattr(b, name)}"
                    )
        if self.pool < 1:
            raise ConfigError(f"pool must be >= 1 (1 = no pooling), got {self.pool}")
        if self.max_tiles < 1:
            raise ConfigError(f"max_tiles must be >= 1 (1 = no tiling), got {self.max_tiles}")
        if self.max_image_tokens is not None and self.max_image_tokens < self.image_tokens:
            raise ConfigError(
                f"max_image_tokens {self.max_image_tokens} is too small for one tile of "
                f"{self.image_tokens} tokens"
            )

    @property
    def towers(self) -> list[ViTConfig]:
        return [self.vision] + ([self.second_vision] if self.second_vision is not None else [])

    def feature_depth(self, tower: ViTConfig) -> int:
        """Blocks of `tower` to run: -1 is all L, -2 is L - 1."""
        return tower.num_hidden_layers + 1 + self.feature_layer

    @property
    def streams(self) -> int:
        """Tokens per patch (`token_streams`)."""
        return token_streams(len(self.towers), self.tower_fusion)

    @property
    def image_tokens(self) -> int:
        """K: tokens one encoder image (one tile) becomes (after dropping [CLS] and pooling)."""
        return image_token_count(self.vision, self.drop_cls, self.pool, self.streams)

    def layout(self, width: int, height: int, max_image_tokens: int | None = None) -> TileLayout:
        """The tiles a width x height image becomes: at most `max_tiles` of the tower's size (plus an
        overview), within `max_image_tokens` (this request's, else the config's), K tokens each."""
        budget = self.max_image_tokens if max_image_tokens is None else max_image_tokens
        v = self.vision
        cls = v.cls_token and not self.drop_cls
        return choose_layout(
            width,
            height,
            v.image_size,
            v.patch_size,
            budget,
            self.max_tiles,
            self.pool,
            cls=cls,
            streams=self.streams,
        )


def token_streams(towers: int, tower_fusion: str) -> int:
    """Tokens per patch: one per tower with tower_fusion "tokens", else one."""
    return towers if tower_fusion == "tokens" else 1


def image_token_count(vision: ViTConfig, drop_cls: bool = True, pool: int = 1, streams: int = 1) -> int:
    """Tokens one `vision` input becomes: its patches, pooled in pool x pool blocks (an odd grid
    rounds up), plus [CLS] when kept, `streams` tokens each: `tokens_per_tile` of a tile of the
    tower's size."""
    cls = vision.cls_token and not drop_cls
    return tokens_per_tile(vision.image_size, vision.patch_size, pool, cls) * streams


class Projector(nn.Module):
    """Vision width -> LM width: Linear, GELU, Linear (LLaVA-1.5; HF's `linear_1`/`linear_2` names).

    With `feature_norm`, each tower's slice of the input (`vision_sizes`, in order) first goes through
    its own LayerNorm, as InternVL's projector (`mlp1`) and Qwen2-VL's merger (`ln_q`) do. Why: a ViT's
    inner-layer features are its residual stream, unnormalised, and two towers' streams differ in scale
    (on shapes scenes the tiny CLIP's patch features have norm ~38, the outline CLIP's ~150), so without
    it one tower drowns the other in the projector's first matmul. On the shapes world with those two
    towers, held-out exact match went from 63% without it to 66% and 70% with it (two seeds, teacher-
    forced, 100 scenes; shape and captions gained most: `train/recipes/vlm.py`).

    `fusion` (two towers): "channels" is the above on both towers' features side by side. With "sum"
    `linear_1` is one Linear per tower (`linear_1.0`, `linear_1.1`), each to `lm_size` hidden units, so
    every hidden unit reads one tower and the token is a sum of one function of each tower's features.
    Why: with one Linear a unit after the GELU can fire for a conjunction, such as "this colour and this
    outline", and a pair never seen in training meets units fitted only to the pairs that were; a sum of
    per-tower parts gives an unseen pair the parts it was built from (meant for towers that each see
    one attribute: the CLIP presets 'tiny-colour' and 'tiny-shape'). With "tokens" each tower has its
    own MLP (`linear_2` one per tower too) and its own token per patch: the LM then binds the towers'
    tokens of a patch by attention, and no input to it mixes an unseen pair.
    """

    def __init__(
        self,
        vision_sizes: list[int],
        lm_size: int,
        feature_norm: bool = False,
        fusion: Literal["channels", "sum", "tokens"] = "channels",
    ):
        super().__init__()
        self.vision_sizes, self.fusion = vision_sizes, fusion
        self.norms = nn.ModuleList(nn.LayerNorm(size) for size in vision_sizes) if feature_norm else None
        self.act = nn.GELU()
        if fusion == "channels":
            self.linear_1 = nn.Linear(sum(vision_sizes), lm_size)
            self.linear_2 = nn.Linear(lm_size, lm_size)
        else:
            self.linear_1 = nn.ModuleList(nn.Linear(size, lm_size) for size in vision_sizes)
            if fusion == "sum":
                self.linear_2 = nn.Linear(lm_size * len(vision_sizes), lm_size)
            else:
                self.linear_2 = nn.ModuleList(nn.Linear(lm_size, lm_size) for _ in vision_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., sum(vision_sizes)), the towers' features side by side -> (..., lm_size), or with
        fusion "tokens" (..., towers, lm_size): one token per tower."""
        parts = x.split(self.vision_sizes, dim=-1)
        if self.norms is not None:
            parts = [norm(part) for norm, part in zip(self.norms, parts)]
        if self.fusion == "channels":
            return self.linear_2(self.act(self.linear_1(torch.cat(parts, dim=-1))))
        hidden = [self.act(linear(part)) for linear, part in zip(self.linear_1, parts)]  # (..., lm_size) each
        if self.fusion == "sum":
            return self.linear_2(torch.cat(hidden, dim=-1))
        return torch.stack([linear(h) for linear, h in zip(self.linear_2, hidden)], dim=-2)


class VLM(nn.Module):
    def __init__(self, cfg: VLMConfig):
        super().__init__()
        self.cfg = cfg
        self.vision = ViT(cfg.vision)
        self.second_vision = ViT(cfg.second_vision) if cfg.second_vision is not None else None
        self.projector = Projector(
            [t.hidden_size for t in cfg.towers], cfg.lm.hidden_size, cfg.feature_norm, cfg.tower_fusion
        )
        self.lm = LM(cfg.lm)

    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (N, 3, h, w) normalised as the tower expects -> image tokens (N, K, C)."""
        cfg = self.cfg
        x = self.vision(pixels, depth=cfg.feature_depth(cfg.vision))  # (N, T, Cv)
        if self.second_vision is not None:
            second = self.second_vision(pixels, depth=cfg.feature_depth(cfg.second_vision))  # (N, T, Cv2)
            x = torch.cat([x, second], dim=-1)  # (N, T, Cv + Cv2)
        cls, x = (x[:, :1], x[:, 1:]) if cfg.vision.cls_token else (x[:, :0], x)  # (N, 0|1, Cv), (N, P, Cv)
        if cfg.pool > 1:
            x, _, _ = pool_patches(x, cfg.vision.grid, cfg.vision.grid, cfg.pool)  # (N, P', Cv)
        if not cfg.drop_cls:
            x = torch.cat([cls, x], dim=1)  # (N, K, Cv)
        tokens = self.projector(x)  # (N, K, C), or (N, K', towers, C) with tower_fusion "tokens"
        return tokens.flatten(1, 2) if cfg.tower_fusion == "tokens" else tokens  # (N, K, C)

    def splice(self, ids: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings of ids (B, T) with the placeholders replaced, in row-major order, by
        image_embeds (M, C) -> (B, T, C). M must equal the number of placeholders."""
        slots = ids == self.cfg.image_token_id  # (B, T)
        n = int(slots.sum())
        if n != image_embeds.shape[0]:
            raise ValueError(
                f"the prompt has {n} image placeholder token(s) but {image_embeds.shape[0]} image "
                f"token(s) were given ({self.cfg.image_tokens} per encoder image or tile)"
            )
        embeds = self.lm.embed.tokens(ids)  # (B, T, C)
        return embeds.masked_scatter(slots[..., None], image_embeds.to(embeds.dtype))

    def forward(
        self,
        ids: torch.Tensor,
        image_embeds: torch.Tensor | None = None,
        pixels: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
        image_index: torch.Tensor | None = None,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V) of ids (B, T) with images spliced in: either their tokens image_embeds
        (M, C) or pixels (N, 3, h, w), one encoder image (a whole image or a tile) per K placeholders,
        in order. `image_index` (N',) says which of the N encoder images fills each run of K
        placeholders, in order, so that several conversations about one image share one pass of the
        tower (training batches do); without it each fills one run. No images: none may be in the prompt."""
        if image_embeds is None and pixels is not None:
            tokens = self.image_tokens(pixels)  # (N, K, C)
            if image_index is not None:
                tokens = tokens[image_index]  # (N', K, C)
            image_embeds = tokens.flatten(0, 1)  # (N'*K, C)
        if image_embeds is None:
            image_embeds = self.lm.embed.tokens.weight.new_zeros(0, self.cfg.lm.hidden_size)  # (0, C)
        embeds = self.splice(ids, image_embeds)  # (B, T, C)
        return self.lm(
            positions=positions, mask=mask, cache=cache, embeds=embeds, last_only=last_only, select=select
        )

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        return self.lm.new_cache(batch_size, max_len)

    def with_images(self, image_embeds: torch.Tensor) -> WithImages:
        """This model bound to one request's image tokens (M, C), for `generate_ids`."""
        return WithImages(self, image_embeds)

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """Each part's own init; the projector PyTorch's default (its input is not unit-scale); the
        feature norms start as the identity affine."""
        self.vision.init_weights(std)
        if self.second_vision is not None:
            self.second_vision.init_weights(std)
        self.lm.init_weights(std)
        for layer in self.projector.modules():
            if isinstance(layer, (nn.Linear, nn.LayerNorm)):
                layer.reset_parameters()


class WithImages(nn.Module):
    """A VLM as the generation engine drives it for one request with images.

    The engine calls `model(ids, positions=, mask=, cache=, last_only=True)`: first once on the whole
    prompt with an empty cache (here the image tokens are spliced in), then once per new token (here a
    plain LM step, so decoding costs exactly what the LM's does). The image tokens are computed once,
    before, by the caller. `cfg` is the LM's, whose context bounds prompt plus new tokens.
    """

    def __init__(self, vlm: VLM, image_embeds: torch.Tensor):
        super().__init__()
        self.vlm = vlm
        self.image_embeds = image_embeds  # (M, C)
        self.cfg = vlm.cfg.lm

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        if cache is None or cache.length == 0:
            return self.vlm(ids, self.image_embeds, None, positions, mask, cache, last_only)
        return self.vlm.lm(ids, positions, mask, cache, last_only=last_only)

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        return self.vlm.new_cache(batch_size, max_len)
