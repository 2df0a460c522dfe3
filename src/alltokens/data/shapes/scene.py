"""What a shapes scene is: 1 to 3 coloured shapes on a 3x3 grid, and the held-out combinations.

A scene is a structured record, not an image: every modality (image, caption, question answering,
later speech and video) is rendered from it, so every answer is known exactly.

Rules a `Scene` enforces, so that every question about it has one answer:
- each object sits in its own grid cell (row, col in 0..2, row 0 at the top, col 0 at the left);
- no two objects share a (colour, shape) pair, so "the red circle" always names one object.

Places are named row word then column word ("top left", "middle right", "bottom center"), except the
middle cell, which is just "center". Captions and position answers use exactly these words.

`HELD_OUT` is the one fixed list of (colour, shape) pairs that training scenes never contain. Each
shape is held out with two colours and each colour at most once, so every colour and every shape still
appears in training with other partners: a model must compose "cyan" and "triangle", never having seen
a cyan triangle.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from itertools import product
from typing import Any

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
SIZES = ("small", "large")
ROWS = ("top", "middle", "bottom")
COLS = ("left", "center", "right")
BACKGROUNDS = ("light", "dark")
MAX_OBJECTS = 3

HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "triangle"),
        ("orange", "circle"),
        ("green", "square"),
        ("cyan", "triangle"),
        ("blue", "circle"),
        ("purple", "square"),
    }
)
ALL_PAIRS: tuple[tuple[str, str], ...] = tuple(product(COLOURS, SHAPES))
TRAIN_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p not in HELD_OUT)
SPLITS = ("train", "heldout", "any")


def check_choice(value: Any, allowed: tuple, what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(map(repr, allowed))}")


@dataclass(frozen=True)
class Obj:
    """One shape: what it is (shape, colour, size) and where (row, col of the 3x3 grid)."""

    shape: str
    colour: str
    size: str
    row: int
    col: int

    def __post_init__(self) -> None:
        check_choice(self.shape, SHAPES, "shape")
        check_choice(self.colour, COLOURS, "colour")
        check_choice(self.size, SIZES, "size")
        for name in ("row", "col"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 2:  # not 1.0, not True
                raise ValueError(f"{name} must be the integer 0, 1 or 2, got {value!r}")

    @property
    def pair(self) -> tuple[str, str]:
        return (self.colour, self.shape)

    @property
    def place(self) -> str:
        """'top left', 'middle right', ...; the middle cell is 'center'."""
        if (self.row, self.col) == (1, 1):
            return "center"
        return f"{ROWS[self.row]} {COLS[self.col]}"


@dataclass(frozen=True)
class Scene:
    """1 to `MAX_OBJECTS` objects in distinct cells with distinct (colour, shape) pairs."""

    objects: tuple[Obj, ...]
    background: str

    def __post_init__(self) -> None:
        check_choice(self.background, BACKGROUNDS, "background")
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise ValueError(f"a scene holds 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        if len({(o.row, o.col) for o in self.objects}) < len(self.objects):
            raise ValueError(f"two objects share a grid cell in {self.objects}")
        if len({o.pair for o in self.objects}) < len(self.objects):
            raise ValueError(f"two objects share a (colour, shape) pair in {self.objects}")

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [asdict(o) for o in self.objects], "background": self.background}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        try:
            return cls(tuple(Obj(**o) for o in data["objects"]), data["background"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a scene record: {data!r} ({e})") from None


def random_scene(rng: random.Random, split: str = "train", n_objects: int | None = None) -> Scene:
    """A random scene, objects listed in reading order (top row first, left to right).

    `split="train"` never uses a `HELD_OUT` pair, `"heldout"` always has at least one, `"any"` draws from
    all 24 pairs. `n_objects=None` draws the count uniformly from 1 to 3.
    """
    check_choice(split, SPLITS, "split")
    n = rng.randint(1, MAX_OBJECTS) if n_objects is None else n_objects
    if not 1 <= n <= MAX_OBJECTS:
        raise ValueError(f"n_objects must be 1 to {MAX_OBJECTS}, got {n_objects}")
    if split == "heldout":
        first = rng.choice(sorted(HELD_OUT))
        pairs = [first, *rng.sample([p for p in ALL_PAIRS if p != first], n - 1)]
        rng.shuffle(pairs)  # the held-out object is not always the first in reading order
    else:
        pairs = rng.sample(TRAIN_PAIRS if split == "train" else ALL_PAIRS, n)
    cells = sorted(rng.sample(range(9), n))
    objects = tuple(
        Obj(shape=shape, colour=colour, size=rng.choice(SIZES), row=cell // 3, col=cell % 3)
        for (colour, shape), cell in zip(pairs, cells)
    )
    return Scene(objects, rng.choice(BACKGROUNDS))
