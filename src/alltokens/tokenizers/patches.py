"""Images as continuous tokens: cut (B, C, h, w) pixels into a row-major sequence of flattened patches.

Each patch vector is laid out (C, p, p) flattened, which is exactly the layout of a
`Conv2d(C, D, p, stride=p)` weight reshaped to (D, C*p*p). So a `Linear` on `patchify(x)` is that
conv, and ViT checkpoints stored either way load by a reshape. Everything is reshape/permute, no loops.

Shape notation: B batch, C channels, h, w pixels, p patch size, N = (h/p)*(w/p) patches,
rows = h/p, cols = w/p.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _grid(height: int, width: int, patch: int) -> tuple[int, int]:
    """(rows, cols) of patches; sizes must be whole multiples of the patch size."""
    if patch < 1:
        raise ValueError(f"patch size must be >= 1, got {patch}")
    if height % patch or width % patch:
        raise ValueError(f"image size {height}x{width} (h x w) is not a multiple of the patch size {patch}")
    return height // patch, width // patch


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, h, w) pixels -> (B, N, C*p*p) patch vectors, patches in row-major order."""
    B, C, h, w = x.shape
    rows, cols = _grid(h, w, patch)
    x = x.reshape(B, C, rows, patch, cols, patch)  # (B, C, rows, p, cols, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, p, p)
    return x.reshape(B, rows * cols, C * patch * patch)  # (B, N, C*p*p)


def unpatchify(tokens: torch.Tensor, patch: int, height: int, width: int) -> torch.Tensor:
    """(B, N, C*p*p) patch vectors -> (B, C, h, w) pixels: the exact inverse of `patchify`."""
    B, N, D = tokens.shape
    rows, cols = _grid(height, width, patch)
    if rows * cols != N or D % (patch * patch):
        raise ValueError(
            f"tokens of shape {tuple(tokens.shape)} do not fit a {height}x{width} image "
            f"of {patch}px patches ({rows * cols} patches of C*{patch * patch} values)"
        )
    C = D // (patch * patch)
    x = tokens.reshape(B, rows, cols, C, patch, patch)  # (B, rows, cols, C, p, p)
    x = x.permute(0, 3, 1, 4, 2, 5)  # (B, C, rows, p, cols, p)
    return x.reshape(B, C, height, width)  # (B, C, h, w)


def patch_grid(rows: int, cols: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(rows*cols, 2) int64 (row, col) of each patch in `patchify` order: 2-D positions for RoPE/tables."""
    r = torch.arange(rows, device=device).repeat_interleave(cols)  # (N,)
    c = torch.arange(cols, device=device).repeat(rows)  # (N,)
    return torch.stack([r, c], dim=-1)  # (N, 2)


def pool_patches(
    tokens: torch.Tensor, rows: int, cols: int, factor: int = 2
) -> tuple[torch.Tensor, int, int]:
    """Average each factor x factor block of neighbouring patch tokens: the "2x2 pooling" that cuts the
    image-token budget 4x. Odd grids round up; an edge block averages only the patches it has.

    (B, rows*cols, C) -> ((B, rows'*cols', C), rows', cols') with rows' = ceil(rows / factor).
    """
    B, N, C = tokens.shape
    if rows * cols != N:
        raise ValueError(f"{N} tokens do not form a {rows}x{cols} grid")
    if factor < 1:
        raise ValueError(f"pooling factor must be >= 1, got {factor}")
    grid = tokens.transpose(1, 2).reshape(B, C, rows, cols)  # (B, C, rows, cols)
    # ceil_mode windows hanging over the edge are divided by the cells they cover, not factor^2
    pooled = F.avg_pool2d(grid, factor, stride=factor, ceil_mode=True)  # (B, C, rows', cols')
    new_rows, new_cols = pooled.shape[-2:]
    return pooled.flatten(2).transpose(1, 2), new_rows, new_cols  # (B, rows'*cols', C)


def describe_grid(width: int, height: int, patch: int) -> str:
    """E.g. "224x224 -> 14x14 patches of 16px = 196 tokens (+1 CLS)" (width x height, rows x cols)."""
    rows, cols = _grid(height, width, patch)
    return f"{width}x{height} -> {rows}x{cols} patches of {patch}px = {rows * cols} tokens (+1 CLS)"


def background_colour(pixels: torch.Tensor, samples: int = 32) -> torch.Tensor:
    """(B, C, h, w) -> (B, C): each image's per-channel median over a grid of about `samples` x `samples`
    of its pixels (every `min(h, w) // samples`-th row and column).

    Why a grid: the background covers most of a shapes picture (objects fill at most a third of it), so
    the median of a thousand evenly spread pixels lands on it as the median of all of them does, and
    torch's median costs ~15 ns a value: 26 ms for 64 96-px images against 3 ms on the grid, which
    was 40% of a 'tiny-colour-96' CLIP step (torch 2.13 CPU)."""
    stride = max(1, min(pixels.shape[-2:]) // samples)
    return pixels[:, :, ::stride, ::stride].flatten(2).median(dim=-1).values


def shape_colour_patches(
    pixels: torch.Tensor, patch: int, floor: float = 0.3, normalise: bool = False, noise: float = 0.0
) -> torch.Tensor:
    """(B, C, h, w) normalised pixels -> (B, N, p*p + 2C + 1) patch vectors that hold an object's
    outline apart from its colour: [contrast map (p*p), foreground colour (C), background colour (C),
    coverage (1)].

    Why: a linear embedding of raw pixels sees a red triangle and a blue triangle as unrelated vectors
    (a pixel's difference from the background is not linear in its RGB), so a tower learns one outline
    template per colour and fails on colour x shape pairs it never saw (`train/recipes/vlm.py`). Here
    the background is the image's per-channel median (`background_colour`), the contrast map is each
    pixel's colour distance to it scaled by the patch's largest distance (or `floor`, so an empty patch's
    noise stays small), and the colours are the contrast-weighted mean of the patch and the background.
    With `normalise`, each contrast map is moved and scaled to a standard place and size in its patch
    (`normalise_outlines`).

    `noise` is subtracted from every colour distance first (clamped at 0), so that pixel noise leaves no
    contrast at all: an empty patch is then all zeros whether its picture is noisy or noise-free. Without
    it a tower trained on noisy pictures meets, in a noise-free one (a plainly drawn scene), empty
    patches it never saw: one 'tiny-long' VLM answered 57% of such questions right and 99% once noise of
    2 of 255 was added to the same pictures.
    """
    C = pixels.shape[1]
    background = background_colour(pixels)  # (B, C)
    # the colour distance written out: Tensor.norm over dim 1 of (B, C, h, w) took 21 ms against 0.4 ms
    # for 16 96-px images (torch 2.13 CPU), a tenth of a VLM training step with two towers
    distance = (pixels - background[:, :, None, None]).square().sum(1, keepdim=True).sqrt()  # (B, 1, h, w)
    if noise:
        distance = (distance - noise).clamp_min(0)
    distance = patchify(distance, patch)  # (B, N, p*p)
    contrast = distance / distance.amax(dim=-1, keepdim=True).clamp_min(floor)  # (B, N, p*p) in [0, 1]
    weights = contrast.unsqueeze(2)  # (B, N, 1, p*p)
    colours = patchify(pixels, patch).unflatten(-1, (C, patch * patch))  # (B, N, C, p*p)
    background = background.unsqueeze(1).expand(-1, contrast.shape[1], -1)  # (B, N, C)
    # an empty patch of a noise-free picture has no contrast at all: its foreground is its background
    # (not 0, a grey that is in no picture: plainly drawn scenes on black read as grey objects)
    eps = 1e-3
    foreground = ((colours * weights).sum(-1) + eps * background) / (weights.sum(-1) + eps)  # (B, N, C)
    coverage = contrast.mean(dim=-1, keepdim=True)  # (B, N, 1)
    if normalise:
        contrast = normalise_outlines(contrast, patch)
    return torch.cat([contrast, foreground, background, coverage], dim=-1)


def normalise_outlines(
    maps: torch.Tensor, patch: int, threshold: float = 0.2, spread: float = 0.25
) -> torch.Tensor:
    """(..., p*p) contrast maps in [0, 1] -> each resampled (bilinear, zeros outside) so that what it holds
    sits at the patch's centre and spreads `spread` * p pixels (root mean square distance from its centre):
    an outline in a standard place and size. Centre and spread weigh each pixel by its contrast above
    `threshold`, so faint noise moves nothing; a map with nothing above it is left as it is.

    Why: a linear patch projection sees one outline at two places or two sizes within its patch as
    unrelated vectors, so a tower must learn each shape at every offset and scale, and it learns the
    offsets and sizes its training images have. A linear probe of 96-px scenes' 32-px contrast maps,
    fitted on training pairs, tells a small held-out circle, square or triangle apart 46% of the time as
    they are, 99% centred and 100% centred and scaled; on plainly drawn scenes (`render_plain`, larger
    objects than any in training) a large one 100% as they are, 65% centred only, 100% centred and
    scaled. Where an object sits in its patch and how large it is are lost here; the patch and the
    coverage (`shape_colour_patches`) still tell them.
    """
    lead = maps.shape[:-1]
    m = maps.reshape(-1, 1, patch, patch)  # (M, 1, p, p)
    weights = (m[:, 0] - threshold).clamp_min(0)  # (M, p, p)
    mass = weights.sum(dim=(1, 2))  # (M,)
    weights = weights / mass.clamp_min(1e-6)[:, None, None]
    steps = torch.arange(patch, device=maps.device, dtype=maps.dtype)
    row = (weights.sum(2) * steps).sum(1)  # (M,) contrast-weighted centre, in pixels
    col = (weights.sum(1) * steps).sum(1)  # (M,)
    offsets = (steps[None, :, None] - row[:, None, None]) ** 2 + (
        steps[None, None, :] - col[:, None, None]
    ) ** 2
    rms = (weights * offsets).sum(dim=(1, 2)).sqrt().clamp_min(1.0)  # (M,) pixels
    empty = mass < 1e-6
    scale = torch.where(empty, 1.0, rms / (spread * patch))  # (M,) output to input, per axis
    theta = torch.zeros(m.shape[0], 2, 3, device=maps.device, dtype=maps.dtype)  # (M, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, 0, 2] = torch.where(empty, 0.0, (2 * col + 1) / patch - 1)  # centre in [-1, 1] coordinates
    theta[:, 1, 2] = torch.where(empty, 0.0, (2 * row + 1) / patch - 1)
    grid = F.affine_grid(theta, [m.shape[0], 1, patch, patch], align_corners=False)  # (M, p, p, 2)
    out = F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (M, 1, p, p)
    return out.reshape(*lead, patch * patch)  # (..., p*p)
