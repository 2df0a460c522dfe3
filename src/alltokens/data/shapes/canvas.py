"""Small objects in large scenes: a shapes scene at the encoder's size inside a larger picture.

The source of the resolution-versus-token-budget measurement (issue 4, section 5). A normal scene is
rendered at the vision tower's input size (48 px for the tiny CLIP) and placed into a canvas several
times larger (144x144, 192x96, any aspect) that is the scene's own background, tint and noise included,
so nothing but the objects shows where the scene is. Without tiling, the whole canvas is shrunk to one
encoder input and every object shrinks by the canvas factor; with AnyRes tiles of the tower's size
(`tokenizers.tiling`), a tile-aligned scene (`aligned=True`: its corner at a multiple of `size` on both
axes) fills one tile at exactly its training scale when the canvas sides are multiples of `size`.
`aligned=False` places it anywhere, usually straddling tiles.

What stays true in the large picture: the scene is only translated, so
- colour and shape questions hold, except those singling their object out by its cell ("the circle at
  the top left"): the scene's top left is not the picture's;
- count and exists hold: the canvas adds no object;
- relations hold: "left of" and "above" compare two objects' columns and rows, which a translation keeps;
- position questions do not: their answer is a cell of the scene's grid, not a place in the picture.
Captions: only the styles that name no place ("two shapes on a dark background: a red circle and a blue
square", "a picture of ..."), the first of them canonical. Both lists are the scene's own words
(`language.questions`, `language.captions`) minus those naming a place of one of its objects in any of
the phrasings `language` uses, so they follow whatever `language` says.

Deterministic: the position is drawn from the rng that renders the scene, so an item of a `ShapesStream`
with a canvas depends only on (seed, split, index), like every other item.
"""

from __future__ import annotations

import random

from PIL import Image

from alltokens.data.shapes.language import QA, at, captions, corner, questions
from alltokens.data.shapes.render import check_canvas, check_size, render
from alltokens.data.shapes.scene import Scene


def place(rng: random.Random, size: int, canvas: tuple[int, int], aligned: bool = True) -> tuple[int, int]:
    """A random top left corner (x, y) for a `size` px scene in a canvas (width, height); on the grid
    of `size` px tiles when `aligned`."""
    w, h = canvas
    step = size if aligned else 1
    return rng.randrange(0, w - size + 1, step), rng.randrange(0, h - size + 1, step)


def render_in_canvas(
    scene: Scene, size: int, canvas: tuple[int, int], rng: random.Random, aligned: bool = True
) -> tuple[Image.Image, tuple[int, int]]:
    """`scene` rendered at `size` px (varied by `rng`, as `render`) at a random place of a canvas
    (width, height) of its background: (the picture, the scene's top left corner in it)."""
    check_size(size)
    check_canvas(size, tuple(canvas), (0, 0))
    top_left = place(rng, size, canvas, aligned)
    return render(scene, size, rng, tuple(canvas), top_left), top_left


def names_a_place(text: str, scene: Scene) -> bool:
    """Whether `text` says where one of the scene's objects is on the scene's grid ("top left", "at the
    top left", "in the top left corner", "on the left", ...)."""
    return any(p in text for o in scene.objects for p in (o.place, at(o.place), corner(o.place)))


def canvas_questions(scene: Scene, rng: random.Random | None = None) -> list[QA]:
    """The scene's questions (`questions(scene, rng)`) that stay true in a larger picture."""
    return [
        qa for qa in questions(scene, rng) if qa.kind != "position" and not names_a_place(qa.question, scene)
    ]


def canvas_captions(scene: Scene) -> list[str]:
    """The scene's captions that stay true in a larger picture; the first is the canonical one."""
    return [c for c in captions(scene) if not names_a_place(c, scene)]
