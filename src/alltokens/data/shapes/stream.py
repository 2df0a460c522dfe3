"""Shapes as data: an endless deterministic stream for training, and a folder of PNGs plus JSONL.

Item `i` of a stream depends only on (seed, split, i): its scene and rendering come from
`random.Random(f"shapes:{seed}:{split}:{i}")` (string seeds hash with SHA-512, the same on every
machine and Python run). So `stream[i]` is random access, and `seek(n)` makes the trainer resume
exactly without saving any generator state. Training needs no files at all. With a `canvas`, each
scene is placed into a larger picture by `canvas.render_in_canvas`, from the same rng.

`write_shapes` writes items 0..n-1 of the same stream to `out/images/NNNNNN.png` and one JSON line per
image to `out/scenes.jsonl`: the file name, the scene record, every caption and the canonical
questions. Every file is written atomically (to a temporary name, then renamed). The images skip the
per-file fsync, which cost more than rendering them, and are synced once before `scenes.jsonl`, the
index, is written last. A non-empty folder is refused unless it is a previous shapes folder (only
`images/` of numbered PNGs and `scenes.jsonl`); that one is overwritten, and the numbered images of a
larger earlier run and temporary files of an interrupted one are removed. Nothing else is deleted.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from PIL import Image

from alltokens.data.shapes.canvas import render_in_canvas
from alltokens.data.shapes.language import captions, questions
from alltokens.data.shapes.render import check_canvas, check_size, render
from alltokens.data.shapes.scene import SPLITS, Scene, check_choice, random_scene
from alltokens.io.checkpoint import atomic_write

SCENES_FILE = "scenes.jsonl"
IMAGES_DIR = "images"
IMAGE_NAME = re.compile(r"\d{6,}\.png|\.\d{6,}\.png\..+\.tmp")  # or a temporary file of an interrupted run
SCENES_TMP = re.compile(r"\.scenes\.jsonl\..+\.tmp")


class ShapesStream:
    """Endless (image, scene) pairs, random access by index; iteration starts where `seek` put it.
    With `canvas` (width, height) the `size` px scene sits in a picture of that size (`canvas.py`)."""

    def __init__(
        self,
        seed: int,
        split: str = "train",
        size: int = 64,
        canvas: tuple[int, int] | None = None,
        aligned: bool = True,
    ):
        check_choice(split, SPLITS, "split")
        check_size(size)
        if canvas is not None:
            canvas = tuple(canvas)
            check_canvas(size, canvas, (0, 0))
        self.seed, self.split, self.size, self.canvas, self.aligned = seed, split, size, canvas, aligned
        self.position = 0

    def __getitem__(self, index: int) -> tuple[Image.Image, Scene]:
        rng = self._rng(index)
        scene = random_scene(rng, self.split)
        if self.canvas is not None:
            return render_in_canvas(scene, self.size, self.canvas, rng, self.aligned)[0], scene
        return render(scene, self.size, rng), scene

    def scene(self, index: int) -> Scene:
        """Item `index`'s scene without drawing it (the same scene `self[index]` draws)."""
        return random_scene(self._rng(index), self.split)

    def _rng(self, index: int) -> random.Random:
        if index < 0:
            raise IndexError(f"a shapes stream is endless and has no item {index}")
        return random.Random(f"shapes:{self.seed}:{self.split}:{index}")

    def seek(self, index: int) -> None:
        """Make the next iteration start at item `index` (exact resume)."""
        self.position = index

    def __iter__(self) -> Iterator[tuple[Image.Image, Scene]]:
        return (self[i] for i in itertools.count(self.position))


def scene_stream(
    seed: int,
    split: str = "train",
    size: int = 64,
    canvas: tuple[int, int] | None = None,
    aligned: bool = True,
) -> ShapesStream:
    return ShapesStream(seed, split, size, canvas, aligned)


def previous_images(out: Path) -> list[Path]:
    """The numbered images of an earlier `write_shapes` run in `out`; refuses any other non-empty folder."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    entries = {p.name for p in out.iterdir()}
    images = out / IMAGES_DIR
    leftovers = sorted(out / e for e in entries if SCENES_TMP.fullmatch(e))
    ours = entries - {e.name for e in leftovers} <= {IMAGES_DIR, SCENES_FILE}
    ours = ours and (out / SCENES_FILE).is_file()
    if ours and images.exists():
        ours = images.is_dir() and all(IMAGE_NAME.fullmatch(p.name) for p in images.iterdir())
    if entries and not ours:
        raise ValueError(
            f"{out} is not empty and is not a shapes data set (one holds only {IMAGES_DIR}/ and "
            f"{SCENES_FILE}); choose a new or empty directory"
        )
    return leftovers + (sorted(images.iterdir()) if images.exists() else [])


def write_shapes(out: str | Path, n: int, size: int = 64, seed: int = 0, split: str = "train") -> Path:
    """Write `n` scenes as `out/images/*.png` and `out/scenes.jsonl`; returns the JSONL path."""
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"the number of images must be a positive integer, got {n!r}")
    out = Path(out)
    stream = ShapesStream(seed, split, size)  # checks size and split before anything is written
    stale = previous_images(out)
    digits = max(6, len(str(n - 1)))
    lines = []
    for i in range(n):
        image, scene = stream[i]
        name = f"{IMAGES_DIR}/{i:0{digits}d}.png"
        atomic_write(out / name, lambda p, image=image: image.save(p, format="PNG"), durable=False)
        record = {
            "file": name,
            "scene": scene.to_dict(),
            "captions": captions(scene),
            "questions": [asdict(qa) for qa in questions(scene)],
        }
        lines.append(json.dumps(record) + "\n")
    os.sync()  # the images reach the disk before the index that lists them
    path = out / SCENES_FILE
    atomic_write(path, lambda p: p.write_text("".join(lines)))
    written = {out / f"{IMAGES_DIR}/{i:0{digits}d}.png" for i in range(n)}
    for old in stale:
        if old not in written:
            old.unlink()
    return path
