"""Resolution versus image-token budget: VQA on small objects in large scenes, tokenized three ways.

    .venv/bin/alltokens train clip --data shapes --out /tmp/clip           # the vision tower (tiny preset)
    .venv/bin/python bench/vlm_tokens.py --vision /tmp/clip
    .venv/bin/python bench/vlm_tokens.py --vision /tmp/clip --stage1-steps 10 --stage2-steps 30 --scenes 10  # smoke

The trade-off of issue 4, section 5. Every picture is a normal shapes scene at the tower's size (48 px for
the tiny CLIP) placed, tile-aligned, in a larger canvas of its own background (`--canvas`, 144x144 by
default: a 3x3 grid of tower-sized tiles), so its objects are small in a large picture
(`data.shapes.canvas`). The tiny VLM preset is trained three times, from the same seed on the same
scenes, changing only how an image becomes tokens (`VLMRecipe.max_tiles` and `pool`):

1. no tiling: the whole canvas shrunk to one tower input (every object shrinks by the canvas factor);
2. AnyRes tiling: the canvas cut into tower-sized tiles plus a downscaled overview (LLaVA-NeXT), so the
   scene lies on one tile at exactly its training scale;
3. tiling + 2x2 pooling: the same tiles, each tile's patch tokens averaged in 2x2 blocks.

Each model then takes the same exam (`data.shapes.exam`): `--scenes` held-out colour x shape scenes in
the same canvas, one question of every kind that stays true in a larger picture (colour, shape, count,
exists, relation; position answers a cell of the scene, not of the picture), greedy, exact match; and a
caption of each 1-2 object scene, right when it names exactly the scene's (colour, shape) pairs. Also
timed: the wall time of training (both stages) and the median time of one answer (`ask`: tiling and
encoding the image, prefill, decoding), on one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import machine

import alltokens
from alltokens.data.shapes import ExamScore, exam_items, take_exam
from alltokens.train.recipes import vlm as vlm_recipe

MODES = {  # name: (max_tiles is the canvas's own grid, pool side)
    "no tiling": (False, 1),
    "AnyRes tiling": (True, 1),
    "tiling + 2x2 pooling": (True, 2),
}


class Timed:
    """A pipeline whose `ask` calls are timed (seconds), for the exam to use as any model."""

    def __init__(self, model: Any):
        self.model, self.seconds = model, []

    def ask(self, image, question, **sampling) -> str:
        t0 = time.perf_counter()
        answer = self.model.ask(image, question, **sampling)
        self.seconds.append(time.perf_counter() - t0)
        return answer

    def caption(self, image, **sampling) -> str:
        return self.model.caption(image, **sampling)


def slug(name: str) -> str:
    return name.replace(" + ", "-and-").replace(" ", "-")


def preset(out: Path, name: str, tiled: bool, pool: int, canvas: tuple[int, int], tile: int) -> Path:
    """The tiny preset with this mode's tokenization, on scenes in `canvas`, as a preset file."""
    grid = -(-canvas[0] // tile) * -(-canvas[1] // tile)  # the tiles that cover the canvas at scale 1
    recipe = dataclasses.replace(
        vlm_recipe.load_preset("tiny"), max_tiles=grid if tiled else 1, pool=pool, canvas=list(canvas)
    )
    path = out / f"{slug(name)}.json"
    path.write_text(json.dumps(recipe.to_dict(), indent=2))
    return path


def row(name: str, layout: str, tokens: int, score: ExamScore, answer_ms: float, train_s: float) -> str:
    kinds = " | ".join(f"{v:.0%}" for v in score.per_kind.values())
    captions = "-" if score.captions is None else f"{score.captions:.0%}"
    return (
        f"| {name} | {layout} | {tokens} | **{score.exact_match:.1%}** | {kinds} | {captions} | "
        f"{answer_ms:.1f} | {train_s:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vision", required=True, help="a CLIP (or ViT) run directory: the vision tower")
    parser.add_argument("--canvas", type=int, nargs=2, default=(144, 144), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--stage1-steps", type=int, help="default: the tiny preset's")
    parser.add_argument("--stage2-steps", type=int, help="default: the tiny preset's")
    parser.add_argument("--scenes", type=int, default=200, help="held-out scenes in the exam")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="where the three runs go (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    canvas = tuple(args.canvas)
    tile = vlm_recipe.vision_tower(args.vision).cfg.image_size
    items = exam_items(args.scenes, tile, canvas=canvas)
    questions = sum(len(item.asked) for item in items)

    with contextlib.nullcontext(args.out) if args.out else tempfile.TemporaryDirectory() as root:
        out = Path(root)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for name, (tiled, pool) in MODES.items():
            t0 = time.perf_counter()
            run = vlm_recipe.train_vlm(
                args.vision,
                "new",
                out / slug(name),
                preset=preset(out, name, tiled, pool, canvas, tile),
                stage1_steps=args.stage1_steps,
                stage2_steps=args.stage2_steps,
                seed=args.seed,
            )
            train_s = time.perf_counter() - t0
            m = alltokens.load(run)
            layout = m.layouts([items[0].image])[0]
            timed = Timed(m)
            score = take_exam(timed, items)
            answer_ms = statistics.median(timed.seconds) * 1e3
            rows.append(row(name, layout.describe(), layout.image_tokens, score, answer_ms, train_s))
            print(f"{name}: {score.summary()}; {train_s:.0f} s training", flush=True)

    recipe = vlm_recipe.load_preset("tiny")
    steps = (args.stage1_steps or recipe.stage1.steps, args.stage2_steps or recipe.stage2.steps)
    kinds = " | ".join(score.per_kind)
    print(
        f"\n# Small objects in large scenes: a {tile}px scene in a {canvas[0]}x{canvas[1]} canvas, "
        f"tiny VLM preset, {steps[0]} + {steps[1]} steps, seed {args.seed}"
    )
    print(f"machine: {machine()}")
    print(f"exam: {args.scenes} held-out scenes, {questions} questions, the same for every mode\n")
    print(f"| mode | layout | image tokens | exact match | {kinds} | captions | ms/answer | train s |")
    print("|---" * (7 + len(score.per_kind)) + "|")
    for line in rows:
        print(line)


if __name__ == "__main__":
    main()
