"""An exam on held-out scenes: every question kind a scene has, answered by a model, scored by exact match.

The one way a vision-language model is scored on the shapes world, shared by the slow quality tests
(`tests/train/test_vlm_recipe.py`) and the resolution-versus-token-budget benchmark
(`bench/vlm_tokens.py`), so that their numbers mean the same thing. Every scene holds a `HELD_OUT`
colour x shape pair; from each, one question of every kind the scene has is asked, phrased at random,
and an answer counts only when it equals the truth (answers are single words, see `language`). Scores
are also given per kind: kinds differ in difficulty and in chance level (yes/no 50%, colour 1 in 8).

The pictures and questions are a pure function of the arguments (`exam_items`), drawn before any model
answers, so every model, tokenization mode or renderer given the same arguments faces the same exam.
With a `canvas` the scenes are small objects in a larger picture (`canvas.render_in_canvas`), asked only
what stays true there (`canvas.canvas_questions`: no position kind).
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from alltokens.data.shapes.canvas import canvas_questions, render_in_canvas
from alltokens.data.shapes.language import QA, QA_KINDS, objects_named, questions
from alltokens.data.shapes.render import render
from alltokens.data.shapes.scene import Scene, random_scene

EXAM_SEED = 2024
Draw = Callable[[Scene, int, random.Random], Image.Image]  # (scene, size, rng) -> picture


class Answerer(Protocol):
    """What takes the exam: a `pipelines.vlm.VisionLanguageModel`, or anything with its two methods."""

    def ask(self, image: Image.Image, question: str, **sampling: Any) -> str: ...

    def caption(self, image: Image.Image, **sampling: Any) -> str: ...


@dataclass(frozen=True)
class ExamItem:
    image: Image.Image
    scene: Scene
    asked: tuple[QA, ...]  # one question per kind the scene has, in `QA_KINDS` order


@dataclass(frozen=True)
class ExamScore:
    exact_match: float  # over all questions
    per_kind: dict[str, float]  # exact match per question kind, in `QA_KINDS` order
    questions: int
    captions: float | None  # 1-2 object scenes whose caption names every object right; None: not asked

    def summary(self) -> str:
        """E.g. "41.0% of 240 (colour 60%, shape 17%, ...), captions 0%"."""
        kinds = ", ".join(f"{kind} {score:.0%}" for kind, score in self.per_kind.items())
        text = f"{self.exact_match:.1%} of {self.questions} ({kinds})"
        return text if self.captions is None else f"{text}, captions {self.captions:.0%}"


def exam_items(
    n_scenes: int,
    size: int,
    draw: Draw = render,
    canvas: tuple[int, int] | None = None,
    aligned: bool = True,
    seed: int = EXAM_SEED,
    split: str = "heldout",
) -> list[ExamItem]:
    """`n_scenes` held-out scenes of `size` px drawn by `draw`, or with `canvas` (width, height) placed
    in a picture that large (by `render_in_canvas`, tile-aligned when `aligned`), each with its questions.
    `split="train"` gives scenes of training pairs instead, to tell not composing from not learning."""
    if canvas is not None and draw is not render:
        raise ValueError("a scene in a canvas is drawn by render_in_canvas; give draw or canvas, not both")
    rng = random.Random(seed)
    items = []
    for _ in range(n_scenes):
        scene = random_scene(rng, split)
        if canvas is None:
            image = draw(scene, size, rng)
            qas = questions(scene, rng)
        else:
            image, _ = render_in_canvas(scene, size, canvas, rng, aligned)
            qas = canvas_questions(scene, rng)
        by_kind: dict[str, list[QA]] = collections.defaultdict(list)
        for qa in qas:
            by_kind[qa.kind].append(qa)
        items.append(ExamItem(image, scene, tuple(rng.choice(options) for options in by_kind.values())))
    return items


def take_exam(
    model: Answerer, items: Sequence[ExamItem], captions: bool = True, max_new_tokens: int = 8
) -> ExamScore:
    """`model`'s exact-match score on `items` (greedy answers of at most `max_new_tokens`); with
    `captions`, also whether its caption of each 1-2 object scene names exactly the scene's
    (colour, shape) pairs (the issue's caption floor is on 1-2 object scenes)."""
    hits: dict[str, list[bool]] = collections.defaultdict(list)
    captions_right = []
    for item in items:
        for qa in item.asked:
            hits[qa.kind].append(
                model.ask(item.image, qa.question, max_new_tokens=max_new_tokens) == qa.answer
            )
        if captions and len(item.scene.objects) <= 2:
            named = objects_named(model.caption(item.image, max_new_tokens=48))
            captions_right.append(set(named) == {o.pair for o in item.scene.objects})
    if not hits:
        raise ValueError("an exam needs at least one scene")
    n = sum(map(len, hits.values()))
    return ExamScore(
        exact_match=sum(map(sum, hits.values())) / n,
        per_kind={kind: sum(hits[kind]) / len(hits[kind]) for kind in QA_KINDS if kind in hits},
        questions=n,
        captions=sum(captions_right) / len(captions_right) if captions_right else None,
    )
