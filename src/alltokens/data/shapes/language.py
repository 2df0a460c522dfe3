"""Words about a scene: captions in several styles, question-answer pairs, and reading captions back.

Captions name objects in reading order (top row first, left to right). The canonical caption (style 0)
is the complete one, size, colour, shape and place of each object, and is the caption target of the
VLM; the other styles vary wording, order of words and detail so that a text encoder sees more than
one template.

Questions come in six kinds, each asked only when it has exactly one answer:
- colour: "what colour is the circle?" refers to the object without its colour: by shape when it is
  unique, else by size and shape, else by shape and place. Answer: the colour word.
- shape: "what shape is the red object?" likewise by colour, size and colour, or colour and place.
- position: "where is the red circle?" -> the place words of `Obj.place` ("top left", "center").
- count: "how many objects are there?" and "how many circles are there?" for every shape -> digits.
- relation: "is the red circle left or right of the blue square?" -> "left", only when the two columns
  differ; "is the red circle above or below the blue square?" -> "above", only when the rows differ.
  Each is asked in both orders, so per pair and axis both answers occur. Not "is the red circle left of
  the blue square?" -> "yes": with both orders and both words asked, that answer is the parity of two
  balanced facts (which object is named first, which word is asked), uncorrelated with either alone, and
  a small LM sat at chance on it even on exact features (`train.recipes.vlm`).
- exists: "is there a green triangle?" "yes" for every object, and as many "no" questions about pairs
  absent from the scene, half of them near misses. Absent pairs are never `HELD_OUT` ones: asking about a held-out pair only
  ever with "no" would teach the model that it does not exist.
Answers are single lowercase strings, so exact match is the metric. Relations are balanced between
their two answers and existence between yes and no by construction. Without an rng the phrasing is
canonical and the absent pairs are drawn from an rng seeded by the scene itself, so the list is
deterministic yet not the same every time.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alltokens.data.shapes.scene import COLOURS, SHAPES, TRAIN_PAIRS, Obj, Scene

QA_KINDS = ("colour", "shape", "position", "count", "relation", "exists")
NUMBER_WORDS = ("zero", "one", "two", "three")


@dataclass(frozen=True)
class QA:
    kind: str
    question: str
    answer: str


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def at(place: str) -> str:
    """'at the top left', 'in the center'."""
    return "in the center" if place == "center" else f"at the {place}"


def corner(place: str) -> str:
    """The place as a speaker might say it: 'in the top left corner', 'in the middle', 'on the right'."""
    if place == "center":
        return "in the middle"
    row, col = place.split()
    if row != "middle" and col != "center":
        return f"in the {place} corner"
    if row == "middle":
        return f"on the {col}"
    return f"at the {row}"


def join(phrases: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} and {phrases[-1]}"


def reading_order(scene: Scene) -> list[Obj]:
    return sorted(scene.objects, key=lambda o: (o.row, o.col))


def captions(scene: Scene) -> list[str]:
    """Every phrasing of the scene; the first is the canonical (complete) caption."""
    objs = reading_order(scene)
    n = len(objs)
    full = [f"{article(o.size)} {o.size} {o.colour} {o.shape} {at(o.place)}" for o in objs]
    spoken = [f"{article(o.size)} {o.size} {o.colour} {o.shape} {corner(o.place)}" for o in objs]
    bare = [f"{article(o.colour)} {o.colour} {o.shape}" for o in objs]
    things = "shape" if n == 1 else "shapes"
    return [
        join(full),
        f"there is {join(spoken)}.",
        "; ".join(f"{o.colour} {o.shape} {o.place}" for o in objs),
        f"{NUMBER_WORDS[n]} {things} on a {scene.background} background: {join(bare)}",
        f"a picture of {join(bare)}",
        ", ".join(f"{o.place}: {o.size} {o.colour} {o.shape}" for o in objs),
    ]


def caption(scene: Scene, rng: random.Random | None = None) -> str:
    """One phrasing: the canonical one without an rng, a random style with one."""
    options = captions(scene)
    return options[0] if rng is None else rng.choice(options)


def describe(obj: Obj, others: Sequence[Obj], without: str) -> str:
    """The shortest unique description of `obj` that does not say its `without` ('colour' or 'shape')."""
    if without == "colour":
        alike = [o for o in others if o.shape == obj.shape]
        name, noun = obj.shape, f"the {obj.shape}"
    else:
        alike = [o for o in others if o.colour == obj.colour]
        name, noun = obj.colour, f"the {obj.colour} object"
    if not alike:
        return noun
    if all(o.size != obj.size for o in alike):
        return noun.replace(name, f"{obj.size} {name}")
    return f"{noun} {at(obj.place)}"


Pick = Callable[[Sequence[str]], str]


def colour_shape_position(objs: list[Obj], pick: Pick) -> list[QA]:
    out = []
    for o in objs:
        others = [p for p in objs if p is not o]
        what = describe(o, others, "colour")
        q = pick([f"what colour is {what}?", f"what is the colour of {what}?", f"which colour is {what}?"])
        out.append(QA("colour", q, o.colour))
    for o in objs:
        what = describe(o, [p for p in objs if p is not o], "shape")
        q = pick([f"what shape is {what}?", f"what is the shape of {what}?", f"which shape is {what}?"])
        out.append(QA("shape", q, o.shape))
    for o in objs:
        q = pick([f"where is the {o.colour} {o.shape}?", f"where is the {o.colour} {o.shape} located?"])
        out.append(QA("position", q, o.place))
    return out


def counts(objs: list[Obj], pick: Pick) -> list[QA]:
    out = [QA("count", pick(["how many objects are there?", "how many shapes are there?"]), str(len(objs)))]
    for shape in SHAPES:
        q = pick([f"how many {shape}s are there?", f"how many {shape}s are in the picture?"])
        out.append(QA("count", q, str(sum(o.shape == shape for o in objs))))
    return out


SIDES = {  # axis -> {phrasing: (the answer when x comes first on the axis, when it comes last)}
    "col": {
        "is {x} left or right of {y}?": ("left", "right"),
        "is {x} to the left or to the right of {y}?": ("left", "right"),
    },
    "row": {
        "is {x} above or below {y}?": ("above", "below"),
        "is {x} higher or lower than {y}?": ("higher", "lower"),
    },
}


def relations(objs: list[Obj], pick: Pick) -> list[QA]:
    """For each pair and each axis where they differ, which side of the other each one is on, asked both
    ways (one answer "left", the other "right"; or "above" and "below")."""
    out = []
    for i, a in enumerate(objs):
        for b in objs[i + 1 :]:
            for axis, phrasings in SIDES.items():
                if getattr(a, axis) == getattr(b, axis):
                    continue
                for x, y in ((a, b), (b, a)):
                    phrasing = pick(list(phrasings))
                    q = phrasing.format(x=f"the {x.colour} {x.shape}", y=f"the {y.colour} {y.shape}")
                    out.append(QA("relation", q, phrasings[phrasing][getattr(x, axis) > getattr(y, axis)]))
    return out


def existence(objs: list[Obj], pick: Pick, rng: random.Random) -> list[QA]:
    """A "yes" per object and as many "no"s. Each "no" is, by a coin flip, a near miss (an absent pair
    sharing a colour or shape with an object, so colour alone cannot answer) or any absent pair."""
    present = {o.pair for o in objs}
    absent = [p for p in TRAIN_PAIRS if p not in present]
    near = [p for p in absent if any(p[0] == c or p[1] == s for c, s in present)]
    negatives = []
    for _ in objs:
        pool = near if near and rng.random() < 0.5 else absent
        negatives.append(rng.choice(pool))
        for remaining in (near, absent):
            if negatives[-1] in remaining:
                remaining.remove(negatives[-1])
    out = []
    for (colour, shape), answer in [*((o.pair, "yes") for o in objs), *((p, "no") for p in negatives)]:
        thing = f"{article(colour)} {colour} {shape}"
        out.append(QA("exists", pick([f"is there {thing}?", f"is there {thing} in the picture?"]), answer))
    return out


def questions(scene: Scene, rng: random.Random | None = None) -> list[QA]:
    """Every applicable question about the scene, grouped by kind in `QA_KINDS` order.

    Kinds have different counts (relations grow with pairs), so a trainer that wants the kinds balanced
    should draw a kind first, then a question of that kind.
    """
    objs = reading_order(scene)
    if rng is None:
        pick: Pick = lambda options: options[0]
        absent_rng = random.Random(json.dumps(scene.to_dict(), sort_keys=True))
    else:
        pick, absent_rng = rng.choice, rng
    return [
        *colour_shape_position(objs, pick),
        *counts(objs, pick),
        *relations(objs, pick),
        *existence(objs, pick, absent_rng),
    ]


COLOUR_WORDS = {c: c for c in COLOURS} | {"violet": "purple", "magenta": "pink", "turquoise": "cyan"}
SHAPE_WORDS = {s: s for s in SHAPES} | {f"{s}s": s for s in SHAPES}
LINKS = {"that", "which", "is", "coloured", "colored"}


def objects_named(text: str) -> list[tuple[str, str]]:
    """The (colour, shape) pairs `text` names, in order of mention.

    A shape word takes the last colour word since the previous shape ("a large red circle", "red
    circle top left"); a shape with no colour before it takes one right after a link ("a circle that
    is red"). A shape with no colour is not a pair and is skipped. Used to score generated captions.
    """
    words = re.findall(r"[a-z]+", text.lower())
    pairs, colour, i = [], None, 0
    while i < len(words):
        word = words[i]
        if word in COLOUR_WORDS:
            colour = COLOUR_WORDS[word]
        elif word in SHAPE_WORDS:
            if colour is None:  # "a circle that is red": the colour comes after a link
                j = i + 1
                while j < len(words) and words[j] in LINKS:
                    j += 1
                if j > i + 1 and j < len(words) and words[j] in COLOUR_WORDS:
                    colour, i = COLOUR_WORDS[words[j]], j
            if colour is not None:
                pairs.append((colour, SHAPE_WORDS[word]))
            colour = None
        i += 1
    return pairs
