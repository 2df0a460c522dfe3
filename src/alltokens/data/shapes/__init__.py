"""The shapes world: synthetic scenes with known answers, rendered to images, captions and questions.

Every image, video and audio issue reuses it, and every test of generalisation uses its one list of
held-out (colour, shape) pairs, `HELD_OUT`.

- `scene.py`: the vocabulary, `Obj`, `Scene`, `HELD_OUT`, `random_scene`;
- `render.py`: `render` (anti-aliased, varied like photographs) and `render_plain` (a second renderer);
- `language.py`: `captions`, `caption`, `questions` (`QA`), and `objects_named` to score captions;
- `stream.py`: `scene_stream` (endless, random access, resumable) and `write_shapes` (PNGs + JSONL);
- `canvas.py`: small objects in large scenes (`render_in_canvas`) and the words still true of them;
- `exam.py`: a model's exact-match score on held-out scenes (`exam_items`, `take_exam`).
"""

from alltokens.data.shapes.canvas import canvas_captions, canvas_questions, render_in_canvas
from alltokens.data.shapes.exam import ExamItem, ExamScore, exam_items, take_exam
from alltokens.data.shapes.language import QA, QA_KINDS, caption, captions, objects_named, questions
from alltokens.data.shapes.render import render, render_plain
from alltokens.data.shapes.scene import (
    COLOURS,
    COLS,
    HELD_OUT,
    ROWS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    random_scene,
)
from alltokens.data.shapes.stream import ShapesStream, scene_stream, write_shapes

__all__ = [
    "COLOURS",
    "COLS",
    "ExamItem",
    "ExamScore",
    "HELD_OUT",
    "QA",
    "QA_KINDS",
    "ROWS",
    "SHAPES",
    "SIZES",
    "Obj",
    "Scene",
    "ShapesStream",
    "caption",
    "captions",
    "canvas_captions",
    "canvas_questions",
    "exam_items",
    "objects_named",
    "questions",
    "random_scene",
    "render",
    "render_in_canvas",
    "render_plain",
    "scene_stream",
    "take_exam",
    "write_shapes",
]
