"""AnyRes tiling (LLaVA-NeXT, Liu et al. 2024): resolution versus image-token budget.

An encoder sees `tile` x `tile` pixels. A large or oddly shaped image is resized (aspect kept, padded)
onto a rows x cols grid of tiles, each encoded on its own, plus a downscaled overview of the whole image
so the model keeps the global picture. The grid is LLaVA-NeXT's choice: among the allowed grids, the one
that keeps the most of the image's own pixels (effective resolution = the image's area once fitted,
capped at its original area), then the one that wastes the fewest padded pixels. Allowed means at most
`max_tiles` tiles and at most `max_image_tokens` tokens; a tight budget thus falls back to fewer tiles,
down to a single tile with no overview. A 1x1 grid never gets an overview: it would be the same image.

Optional pooling of each tile's patch tokens in pool x pool blocks (`patches.pool_patches`; 2x2 cuts
tokens per tile 4x). `tokens_per_tile` is the one count of tokens per encoder input: the VLM's
`image_token_count` is it for a vision tower, so a layout's budget and the prompt's placeholders agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from alltokens.tokenizers.image import fit_image


@dataclass(frozen=True)
class TileLayout:
    """A rows x cols grid of `tile`-pixel tiles, optionally plus an overview tile, each giving
    `tokens_per_tile` image tokens (after pool x pool pooling; pool 1 = none)."""

    rows: int
    cols: int
    tile: int
    overview: bool
    pool: int
    tokens_per_tile: int

    @property
    def tiles(self) -> int:
        """Tiles the encoder sees, the overview included."""
        return self.rows * self.cols + int(self.overview)

    @property
    def image_tokens(self) -> int:
        return self.tiles * self.tokens_per_tile

    def describe(self) -> str:
        """E.g. "2x3 tiles of 64px + overview, 2x2 pooled: 7 x 16 = 112 image tokens"."""
        grid = f"{self.rows}x{self.cols} tile{'s' if self.rows * self.cols > 1 else ''} of {self.tile}px"
        extras = (" + overview" if self.overview else "") + _pooled(self.pool)
        return f"{grid}{extras}: {self.tiles} x {self.tokens_per_tile} = {self.image_tokens} image tokens"


def _pooled(pool: int) -> str:
    return f", {pool}x{pool} pooled" if pool > 1 else ""


def pool_side(pool: int) -> int:
    """The side of the pooled blocks, checked: n pools n x n blocks (1 = none, 2 = 2x2)."""
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise ValueError(f"pool must be a block side >= 1 (1 = no pooling, 2 = 2x2), got {pool!r}")
    return pool


def tokens_per_tile(tile: int, patch: int, pool: int = 1, cls: bool = False) -> int:
    """(tile/patch)^2 patch tokens, ceil(tile/patch / pool)^2 after pool x pool pooling (an odd grid
    rounds up), plus one when a [CLS] token is kept (`cls`)."""
    if patch < 1 or tile < patch or tile % patch:
        raise ValueError(f"tile size {tile} must be a positive multiple of the patch size {patch}")
    side = tile // patch
    return math.ceil(side / pool_side(pool)) ** 2 + int(cls)


def most_image_tokens(per_tile: int, max_tiles: int, max_image_tokens: int | None = None) -> int:
    """An upper bound on the tokens of any one image's layout: `max_tiles` tiles plus the overview (when
    more than one tile), and no more than fit in `max_image_tokens`. What a prompt must leave room for."""
    tiles = max_tiles + int(max_tiles > 1)
    if max_image_tokens is not None:
        tiles = min(tiles, max_image_tokens // per_tile)
    return tiles * per_tile


def choose_layout(
    width: int,
    height: int,
    tile: int,
    patch: int,
    max_image_tokens: int | None = None,
    max_tiles: int = 12,
    pool: int = 1,
    overview: bool = True,
    cls: bool = False,
    streams: int = 1,
) -> TileLayout:
    """The grid for a width x height image within `max_tiles` and `max_image_tokens` (see module doc);
    `pool` and `cls` as `tokens_per_tile`; `streams` tokens per patch (a VLM with a token per tower)."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max_tiles < 1:
        raise ValueError(f"max_tiles must be >= 1, got {max_tiles}")
    pool = pool_side(pool)
    per_tile = tokens_per_tile(tile, patch, pool, cls) * streams
    if max_image_tokens is not None and max_image_tokens < per_tile:
        raise ValueError(
            f"an image-token budget of {max_image_tokens} is too small for one tile, "
            f"which needs {per_tile} tokens ({tile}px tile, {patch}px patches{_pooled(pool)}"
            f"{f', {streams} tokens per patch' if streams > 1 else ''})"
        )
    best, best_key = (1, 1), (-1, 0)
    for rows in range(1, max_tiles + 1):
        for cols in range(1, max_tiles // rows + 1):
            n = rows * cols + int(overview and rows * cols > 1)
            if max_image_tokens is not None and n * per_tile > max_image_tokens:
                continue
            key = _fit_score(width, height, cols * tile, rows * tile)
            if key > best_key:
                best, best_key = (rows, cols), key
    rows, cols = best
    return TileLayout(rows, cols, tile, overview and rows * cols > 1, pool, per_tile)


def _fit_score(width: int, height: int, grid_w: int, grid_h: int) -> tuple[int, int]:
    """(effective resolution, -wasted pixels) of an image fitted inside a grid_w x grid_h canvas."""
    scale = min(grid_w / width, grid_h / height)
    fitted = int(width * scale) * int(height * scale)
    effective = min(fitted, width * height)  # upscaling adds no information
    return effective, -(grid_w * grid_h - effective)


def tile_image(image: Image.Image, layout: TileLayout) -> list[Image.Image]:
    """The tiles of `layout`, each tile x tile: the overview first (when the layout has one), then the
    grid, row-major, cut from the image fitted (aspect kept, padded) to (cols*tile, rows*tile)."""
    t = layout.tile
    tiles = [fit_image(image, t, "pad")] if layout.overview else []
    canvas = fit_image(image, (layout.cols * t, layout.rows * t), "pad")
    for r in range(layout.rows):
        tiles.extend(canvas.crop((c * t, r * t, (c + 1) * t, (r + 1) * t)) for c in range(layout.cols))
    return tiles
