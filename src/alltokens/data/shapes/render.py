"""Drawing a scene: `render` (anti-aliased, varied like a photograph) and `render_plain` (a second hand).

`render` draws at up to 4x the target size and box-downsamples, which anti-aliases every edge. Given an
rng it varies what varies between real pictures, so that a model has to learn the concept and not the
pixels of one renderer:
- the shade within each hue: hue +-5 degrees (neighbouring hues in `PALETTE` are at least 27 degrees
  apart, so a shade never crosses into the next colour), saturation and value +-0.08;
- object size: large is 0.62 to 0.78 of a cell, small 0.34 to 0.46, with a clear gap between them;
- the exact position inside the cell (the object always stays inside its own cell);
- rotation of squares and triangles by up to 15 degrees;
- the background: a light or dark plain colour with a faint random tint;
- mild Gaussian pixel noise (standard deviation 1 to 4 of 255).
Without an rng every one of these takes its middle value: the canonical rendering.

`render_plain` is "drawn by other means": plain `ImageDraw` primitives at the target size with no
supersampling, pure hues, bigger or smaller objects, isosceles triangles filling their box, a dark
outline and a white or black background. Quality floors are re-checked on these images.

Coordinates: the image is cut into 3x3 cells of `size / 3` pixels; (row, col) = (0, 0) is top left.
`render` can also put that image into a larger canvas of the same background (`canvas.py`).
"""

from __future__ import annotations

import colorsys
import math
import random

import numpy as np
from PIL import Image, ImageDraw

from alltokens.data.shapes.scene import Obj, Scene

MIN_SIZE = 16
MAX_SIZE = 4096  # a 4096 image is drawn on an 8192 canvas (200 MB); bigger is surely a mistake

# Canonical (hue in degrees, saturation, value) of each colour. Pink is a light magenta (less saturated)
# and purple a darker violet, so that they also differ from red and blue in more than hue.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.0, 0.90, 0.90),
    "orange": (27.0, 0.95, 1.00),
    "yellow": (54.0, 0.95, 0.97),
    "green": (120.0, 0.85, 0.72),
    "cyan": (185.0, 0.90, 0.90),
    "blue": (222.0, 0.90, 0.95),
    "purple": (275.0, 0.75, 0.75),
    "pink": (325.0, 0.55, 1.00),
}
HUE_JITTER, SV_JITTER = 5.0, 0.08
# Pure RGB values for `render_plain`, the way someone would type them into a drawing program.
PLAIN_RGB: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "orange": (255, 140, 0),
    "yellow": (255, 230, 0),
    "green": (0, 190, 0),
    "cyan": (0, 230, 230),
    "blue": (0, 70, 255),
    "purple": (150, 0, 220),
    "pink": (255, 100, 200),
}
# Nominal diameter as a fraction of the cell: (canonical, jitter) for `render`, fixed for `render_plain`.
DIAMETER = {"large": (0.70, 0.08), "small": (0.40, 0.06)}
PLAIN_DIAMETER = {"large": 0.82, "small": 0.46}
MAX_ROTATION = 15.0  # degrees, squares and triangles
MARGIN = 0.04  # the smallest gap, as a fraction of the cell, between an object and its cell's border
CANONICAL_BACKGROUND = {"light": (236, 236, 236), "dark": (28, 28, 28)}
PLAIN_BACKGROUND = {"light": (255, 255, 255), "dark": (0, 0, 0)}


def check_size(size: int) -> None:
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"image size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, got {size!r}")


def check_canvas(size: int, canvas: tuple[int, int], at: tuple[int, int]) -> None:
    """A canvas holds the `size` x `size` scene placed at `at` and is no bigger than `MAX_SIZE`."""
    w, h = canvas
    if not all(isinstance(v, int) and size <= v <= MAX_SIZE for v in (w, h)):
        raise ValueError(
            f"a canvas must be {size} to {MAX_SIZE} pixels a side to hold a {size}px scene, got {w}x{h}"
        )
    x, y = at
    if not (0 <= x <= w - size and 0 <= y <= h - size):
        raise ValueError(f"a {size}px scene at ({x}, {y}) does not fit in a {w}x{h} canvas")


def hsv_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    """(hue in degrees, saturation, value) -> 8-bit RGB."""
    r, g, b = colorsys.hsv_to_rgb((h % 360.0) / 360.0, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def shade(colour: str, rng: random.Random | None) -> tuple[int, int, int]:
    """The canonical RGB of `colour`, or a random shade of it that stays nearest its own hue."""
    h, s, v = PALETTE[colour]
    if rng is not None:
        h += rng.uniform(-HUE_JITTER, HUE_JITTER)
        s = min(1.0, s + rng.uniform(-SV_JITTER, SV_JITTER))
        v = min(1.0, v + rng.uniform(-SV_JITTER, SV_JITTER))
    return hsv_rgb(h, s, v)


def background_rgb(background: str, rng: random.Random | None) -> tuple[int, int, int]:
    if rng is None:
        return CANONICAL_BACKGROUND[background]
    hue = rng.uniform(0.0, 360.0)
    if background == "light":
        return hsv_rgb(hue, rng.uniform(0.0, 0.10), rng.uniform(0.85, 0.97))
    return hsv_rgb(hue, rng.uniform(0.0, 0.20), rng.uniform(0.05, 0.20))


def outline(shape: str, angle: float) -> list[tuple[float, float]]:
    """Polygon corners of a square or equilateral triangle of nominal diameter 1, rotated by `angle`
    degrees and centred on its bounding box (so a triangle sits in the middle of its cell, not low)."""
    if shape == "square":
        h = 0.425  # a 0.85 side has about the area of a circle of diameter 1
        points = [(-h, -h), (h, -h), (h, h), (-h, h)]
    else:  # a side of 1, pointing up
        r = 1.0 / math.sqrt(3.0)
        points = [(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    points = [(x * c - y * s, x * s + y * c) for x, y in points]
    mx = (max(x for x, _ in points) + min(x for x, _ in points)) / 2
    my = (max(y for _, y in points) + min(y for _, y in points)) / 2
    return [(x - mx, y - my) for x, y in points]


def draw_object(draw: ImageDraw.ImageDraw, obj: Obj, cell: float, rng: random.Random | None) -> None:
    """Draw one object of `render` into its cell of a canvas whose cells are `cell` pixels wide."""
    fill = shade(obj.colour, rng)
    diameter, jitter = DIAMETER[obj.size]
    angle = 0.0
    if rng is not None:
        diameter += rng.uniform(-jitter, jitter)
        if obj.shape != "circle":
            angle = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    points = None if obj.shape == "circle" else outline(obj.shape, angle)
    half_w = half_h = 0.5 * diameter  # half the bounding box, in cells
    if points is not None:
        half_w = diameter * max(abs(x) for x, _ in points)
        half_h = diameter * max(abs(y) for _, y in points)
    cx, cy = obj.col + 0.5, obj.row + 0.5
    if rng is not None:  # anywhere that keeps MARGIN between the object and its cell's border
        cx += rng.uniform(-1.0, 1.0) * max(0.0, 0.5 - MARGIN - half_w)
        cy += rng.uniform(-1.0, 1.0) * max(0.0, 0.5 - MARGIN - half_h)
    if points is None:
        r = 0.5 * diameter
        draw.ellipse([(cx - r) * cell, (cy - r) * cell, (cx + r) * cell, (cy + r) * cell], fill=fill)
    else:
        draw.polygon([((cx + diameter * x) * cell, (cy + diameter * y) * cell) for x, y in points], fill=fill)


def supersampling(size: int) -> int:
    """4x for the usual small images, 2x once the canvas would pass 1024 pixels: enough to anti-alias."""
    return max(2, min(4, math.ceil(1024 / size)))


def render(
    scene: Scene,
    size: int = 64,
    rng: random.Random | None = None,
    canvas: tuple[int, int] | None = None,
    at: tuple[int, int] = (0, 0),
) -> Image.Image:
    """An anti-aliased `size` x `size` RGB image of `scene`; canonical when `rng` is None.

    With `canvas` (width, height), the same `size` x `size` scene drawn with its top left corner at
    pixel `at` of a larger picture that is all the scene's background, tint and noise included (the
    large scenes of `shapes.canvas`)."""
    check_size(size)
    w, h = canvas or (size, size)
    check_canvas(size, (w, h), at)
    factor = supersampling(max(w, h))
    background = background_rgb(scene.background, rng)
    picture = Image.new("RGB", (size * factor, size * factor), background)
    draw = ImageDraw.Draw(picture)
    for obj in scene.objects:
        draw_object(draw, obj, size * factor / 3, rng)
    if canvas is not None:
        scene_part = picture
        picture = Image.new("RGB", (w * factor, h * factor), background)
        picture.paste(scene_part, (at[0] * factor, at[1] * factor))
    image = picture.reduce(factor)  # box filter: each pixel is the mean of factor x factor samples
    if rng is None:
        return image
    noise = np.random.default_rng(rng.getrandbits(64)).normal(0.0, rng.uniform(1.0, 4.0), (h, w, 3))
    pixels = np.asarray(image, dtype=np.float32) + noise  # (h, w, 3)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def render_plain(scene: Scene, size: int = 64) -> Image.Image:
    """`scene` drawn plainly: no supersampling, pure colours, outlines, white or black background."""
    check_size(size)
    image = Image.new("RGB", (size, size), PLAIN_BACKGROUND[scene.background])
    draw = ImageDraw.Draw(image)
    cell, width = size / 3, max(1, round(size / 64))
    for obj in scene.objects:
        fill = PLAIN_RGB[obj.colour]
        edge = tuple(round(0.55 * c) for c in fill)
        r = 0.5 * PLAIN_DIAMETER[obj.size] * cell
        cx, cy = (obj.col + 0.5) * cell, (obj.row + 0.5) * cell
        box = [cx - r, cy - r, cx + r, cy + r]
        if obj.shape == "circle":
            draw.ellipse(box, fill=fill, outline=edge, width=width)
        elif obj.shape == "square":
            draw.rectangle(box, fill=fill, outline=edge, width=width)
        else:
            corners = [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
            draw.polygon(corners, fill=fill, outline=edge, width=width)
    return image
