"""Raw image files -> clean RGB -> normalised model pixels, and back for reports.

Every image a model sees passes `load_image`, so every way a real file can be odd is handled once, here:
truncated or non-image files and zero-size or enormous images raise `ImageError` naming the file;
grayscale, 16-bit, float, alpha, palette, CMYK and YCbCr images are converted to RGB and never fail.
The pixel limit is checked from the header, before anything is decoded, so a 100000x100000 PNG of a few
bytes (a "decompression bomb") costs nothing.

Shape notation: B batch, h, w pixels. Sizes given as a tuple are (width, height), PIL's order.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, ImageStat

MAX_PIXELS = 40_000_000  # width*height; above PIL's own hard limit (~179 MP) PIL refuses regardless
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's normalisation, which its checkpoints expect
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)  # maps [0, 1] to [-1, 1]: our own models' default
FIT_MODES = ("resize", "pad", "crop")
WHITE = (255, 255, 255)


class ImageError(ValueError):
    """An image that cannot be used: the message names the file (or "<bytes>") and what is wrong."""


def load_image(src: str | Path | bytes | Image.Image, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, fully decode and convert any image to RGB, with EXIF orientation applied.

    Decoding is forced here (`load()`), so a truncated file fails now with its name rather than later
    inside a batch. A PIL image passed in is checked and converted the same way; it is not modified.
    """
    if isinstance(src, Image.Image):
        return _decode(src, "<image>", max_pixels)
    if isinstance(src, bytes | bytearray):
        name, fp = "<bytes>", io.BytesIO(src)
    else:
        path = Path(src)
        if not path.exists():
            raise FileNotFoundError(f"image file not found: {path}")
        if not path.is_file():
            raise ImageError(f"{path}: not a file")
        name, fp = str(path), path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
        try:
            image = Image.open(fp)
        except Image.DecompressionBombError as e:
            raise ImageError(f"{name}: over the limit of {max_pixels} pixels ({e})") from e
        except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
            raise ImageError(f"{name}: not a readable image ({e})") from e
        with image:
            return _decode(image, name, max_pixels)


def _decode(image: Image.Image, name: str, max_pixels: int) -> Image.Image:
    """Check the header size, decode, orient and convert to RGB (a new image)."""
    w, h = image.size
    if w == 0 or h == 0:
        raise ImageError(f"{name}: zero-size image ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{name}: {w}x{h} = {w * h} pixels is over the limit of {max_pixels} pixels")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # "image file is truncated", bad chunks
        raise ImageError(f"{name}: broken or truncated image ({e})") from e
    return _to_rgb(ImageOps.exif_transpose(image), name)


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Any PIL mode -> RGB with the colours a viewer shows: transparency composited on white, 16-bit and
    float grayscale scaled (PIL's own convert clips them to white)."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_gray_to_uint8(np.asarray(image), mode)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA") if mode != "La" else image.convert("LA").convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", image.size, (*WHITE, 255)), rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as e:
        raise ImageError(f"{name}: cannot convert colour mode {mode} to RGB ({e})") from e


def _gray_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit grayscale spans 0..65535, 32-bit int is 16-bit data when above 255 (how some PNGs decode),
    float is 0..1 when it stays below 1, else 0..255."""
    values = values.astype(np.float64)
    if mode.startswith("I;16") or (mode == "I" and values.max() > 255):
        values = values / 257.0
    elif mode == "F" and values.max() <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    w, h = (size, size) if isinstance(size, int) else size
    if w < 1 or h < 1:
        raise ValueError(f"image size must be positive, got {size}")
    return w, h


def fit_image(
    image: Image.Image,
    size: int | tuple[int, int],
    mode: str = "resize",
    fill: tuple[int, int, int] | None = None,
) -> Image.Image:
    """Bring an image to exactly `size` (int or (width, height)).

    "resize" squashes (bicubic); "pad" keeps the aspect ratio, fits the image inside and pads the rest,
    centred, with `fill` (default the image's own mean colour, so the border adds no edge: LLaVA's
    `expand2square`); "crop" scales the short side to fit and centre-crops the rest.
    """
    w, h = _size(size)
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}; expected one of {', '.join(FIT_MODES)}")
    if image.size == (w, h):
        return image.copy()
    if mode == "resize":
        return image.resize((w, h), Image.Resampling.BICUBIC)
    iw, ih = image.size
    scale = min(w / iw, h / ih) if mode == "pad" else max(w / iw, h / ih)
    sw, sh = max(1, round(iw * scale)), max(1, round(ih * scale))
    scaled = image.resize((sw, sh), Image.Resampling.BICUBIC)
    if mode == "crop":
        left, top = (sw - w) // 2, (sh - h) // 2
        return scaled.crop((left, top, left + w, top + h))
    colour = fill or tuple(round(c) for c in ImageStat.Stat(image.convert("RGB")).mean)
    canvas = Image.new("RGB", (w, h), colour)
    canvas.paste(scaled.convert("RGB"), ((w - sw) // 2, (h - sh) // 2))
    return canvas


def to_pixels(
    images: Sequence[Image.Image],
    size: int | tuple[int, int],
    mode: str = "resize",
    mean: Sequence[float] = HALF,
    std: Sequence[float] = HALF,
) -> torch.Tensor:
    """PIL images -> (B, 3, h, w) float32, each fitted to `size` and normalised as (x/255 - mean) / std.

    CLIP checkpoints expect `CLIP_MEAN`/`CLIP_STD`; a model's config records which it was trained with.
    """
    if len(images) == 0:
        raise ValueError("to_pixels needs at least one image, got an empty list")
    fitted = [fit_image(im if im.mode == "RGB" else _to_rgb(im, "<image>"), size, mode) for im in images]
    x = torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) for im in fitted]))  # (B, h, w, 3)
    x = x.permute(0, 3, 1, 2) / 255.0  # (B, 3, h, w)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def from_pixels(
    pixels: torch.Tensor, mean: Sequence[float] = HALF, std: Sequence[float] = HALF
) -> list[Image.Image]:
    """(B, 3, h, w) normalised pixels -> RGB PIL images (clipped to the valid range): for reports."""
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"expected pixels of shape (B, 3, h, w), got {tuple(pixels.shape)}")
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    x = (pixels.detach().float().cpu() * s + m).clamp(0, 1)  # (B, 3, h, w) in [0, 1]
    x = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (B, h, w, 3)
    return [Image.fromarray(a) for a in x]


def draw_patch_grid(image: Image.Image, patch: int, min_cell: int = 24) -> Image.Image:
    """The image with its patch grid drawn over it, and patch indices (patchify's row-major order) in a
    few cells. Small images are first enlarged by a whole factor (nearest neighbour, so pixels stay
    visible) until a cell is at least `min_cell` pixels, where lines and numbers are legible.
    """
    w, h = image.size
    if patch < 1 or w % patch or h % patch:
        raise ValueError(f"image size {w}x{h} (w x h) is not a multiple of the patch size {patch}")
    zoom = max(1, math.ceil(min_cell / patch))
    cell, rows, cols = patch * zoom, h // patch, w // patch
    base = image.convert("RGB").resize((w * zoom, h * zoom), Image.Resampling.NEAREST)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    # a dark and a light line side by side: visible on light and dark backgrounds alike
    for shift, colour in ((0, (0, 0, 0, 150)), (1, (255, 255, 255, 170))):
        for c in range(cols + 1):
            x = min(c * cell + shift, base.width - 1)
            draw.line([(x, 0), (x, base.height - 1)], fill=colour)
        for r in range(rows + 1):
            y = min(r * cell + shift, base.height - 1)
            draw.line([(0, y), (base.width - 1, y)], fill=colour)
    font = ImageFont.load_default(size=max(8, round(cell * 0.4)))
    for index in _labelled_cells(rows, cols):
        r, c = divmod(index, cols)
        xy = (c * cell + 3, r * cell + 2)
        box = draw.textbbox(xy, str(index), font=font)
        if box[2] - box[0] < cell - 3:  # only where the number fits in its cell
            draw.rectangle(box, fill=(0, 0, 0, 150))
            draw.text(xy, str(index), fill=(255, 255, 255, 255), font=font)
    return Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")


def _labelled_cells(rows: int, cols: int) -> list[int]:
    """Every cell of a small grid; else the first row, the first column and the last cell."""
    if rows * cols <= 64:
        return list(range(rows * cols))
    return sorted({*range(cols), *range(0, rows * cols, cols), rows * cols - 1})
