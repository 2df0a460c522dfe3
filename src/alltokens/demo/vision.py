"""The demo's vision section: images become patch tokens, CLIP, and a LLaVA-style model.

A real photograph (scikit-learn's sample) cut into patch tokens and laid out in AnyRes tiles; a CLIP
trained on the handwritten digits and classifying the held-out test scans zero-shot; a CLIP trained on
the shapes world, whose image tower a small vision-language model then learns to talk about. The
questions and captions are about held-out scenes: every one holds a colour-shape pair that no training
image showed, so a right answer means the model composed what it learned.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from alltokens.report import Report

PHOTO = "china.jpg"  # one of scikit-learn's two sample photos (427 x 640)
DIGITS_SHOWN = 8
SCENES_SHOWN = 6
QUESTIONS_SCORED = 60  # held-out questions behind the accuracy line


def run(report: Report, out: Path, quick: bool, steps: int | None, log: Callable[[str], None]) -> None:
    """Train the vision models under `out` and add the vision sections to `report`."""
    log("vision 1/4: images become patch tokens")
    _patches(report)

    log("vision 2/4: CLIP on handwritten digits (training)")
    _digits_clip(report, out, steps or (200 if quick else 300), log)

    log("vision 3/4: CLIP on the shapes world (training)")
    from alltokens.train.recipes.clip import train_clip

    # the full run trains the presets' own steps, so the report shows the quality the docs state;
    # quick still trains past the CLIP preset's 100 warmup steps
    shapes_clip = train_clip(
        "shapes", out / "clip-shapes", steps=steps or (300 if quick else None), progress=True
    )

    log("vision 4/4: a vision-language model on that tower (training: captions, then questions)")
    _vlm(report, out, shapes_clip, quick, steps, log)


def _patches(report: Report) -> None:
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from alltokens.tokenizers.image import draw_patch_grid, fit_image, load_image
    from alltokens.tokenizers.patches import describe_grid
    from alltokens.tokenizers.tiling import choose_layout

    photo = load_image(Image.fromarray(load_sample_image(PHOTO)))
    w, h = photo.size
    report.heading("Images become patch tokens")
    report.text(
        f"A {w}x{h} photograph, centre-cropped to a ViT's 224x224 input: {describe_grid(224, 224, 16)}. "
        "Each 16x16 patch is flattened to one 768-value vector: one token."
    )
    report.image(draw_patch_grid(fit_image(photo, 224, "crop"), 16), "the photo cut into 16px patches")
    rows = []
    for budget, pool in ((None, 1), (1200, 1), (400, 2), (120, 2)):
        layout = choose_layout(w, h, tile=224, patch=16, max_image_tokens=budget, pool=pool)
        rows.append(("none" if budget is None else str(budget), layout.describe()))
    report.text(
        "AnyRes: the same photo as tiles at the encoder's resolution plus an overview, under budgets."
    )
    report.table(["image-token budget", "layout"], rows)


def _digits_clip(report: Report, out: Path, steps: int, log: Callable[[str], None]) -> None:
    import alltokens
    from alltokens.data.digits import digit_labels, load_digits_split
    from alltokens.report import image_html, verdict_html
    from alltokens.train.recipes.clip import train_clip

    clip = alltokens.load(train_clip("digits", out / "clip-digits", steps=steps, progress=True))
    test = load_digits_split("test", size=clip.cfg.vision.image_size)
    labels = digit_labels()
    probs = clip.classify([im for im, _ in test], labels)  # (N, 10)
    guess = probs.argmax(dim=-1)
    accuracy = sum(int(g) == y for g, (_, y) in zip(guess.tolist(), test)) / len(test)
    log(f"    zero-shot accuracy on {len(test)} held-out scans: {accuracy:.1%}")

    report.heading("CLIP: zero-shot digits")
    report.text(
        f"A CLIP trained for {steps} steps on scikit-learn's handwritten digits (real 8x8 scans) with "
        f"captions such as {labels[7]!r}. Zero-shot: each held-out scan is matched against the ten "
        f"label texts. Accuracy on all {len(test)} held-out scans: {accuracy:.1%}."
    )
    rows = []
    for (image, label), p in list(zip(test, probs))[:DIGITS_SHOWN]:
        top = p.topk(3)
        best = labels[int(top.indices[0])]
        rest = ", ".join(f"{labels[int(i)]} {float(v):.2f}" for i, v in zip(top.indices[1:], top.values[1:]))
        rows.append(
            (
                image_html(image, width=64),
                labels[label],
                verdict_html(f"{best} ({float(top.values[0]):.2f})", int(top.indices[0]) == label),
                rest,
            )
        )
    report.table(["scan", "truth", "CLIP's choice", "next two"], rows)


def _vlm(
    report: Report, out: Path, vision: Path, quick: bool, steps: int | None, log: Callable[[str], None]
) -> None:
    import alltokens
    from alltokens.data.shapes import caption, objects_named, questions, random_scene, render
    from alltokens.report import image_html, verdict_html
    from alltokens.train.recipes.vlm import load_preset, train_vlm

    preset = load_preset("tiny")
    stage1, stage2 = (steps, steps) if steps else (preset.stage1.steps, 300 if quick else preset.stage2.steps)
    vlm = alltokens.load(
        train_vlm(vision, "new", out / "vlm", stage1_steps=stage1, stage2_steps=stage2, progress=True)
    )
    size = vlm.cfg.vision.image_size

    rng = random.Random(2024)
    right = total = 0
    rows = []
    while total < QUESTIONS_SCORED:
        scene = random_scene(rng, "heldout")
        image = render(scene, size, rng)
        asked = questions(scene, rng)
        rng.shuffle(asked)
        verdicts = []
        for qa in asked[:2]:
            answer = vlm.ask(image, qa.question)
            ok = answer.strip() == qa.answer
            right, total = right + ok, total + 1
            truth = "" if ok else f" (truth: {qa.answer})"
            verdicts.append(verdict_html(f"{qa.question} → {answer}{truth}", ok))
        if len(rows) < SCENES_SHOWN:
            said = vlm.caption(image)
            named_ok = set(objects_named(said)) == {(o.colour, o.shape) for o in scene.objects}
            rows.append(
                (image_html(image, width=128), caption(scene), verdict_html(said, named_ok), *verdicts)
            )
    log(f"    held-out answers right: {right}/{total}")

    report.heading("A LLaVA-style vision-language model")
    report.text(
        f"The shapes CLIP's image tower (second-to-last layer, {vlm.cfg.image_tokens} patch tokens), a "
        f"2-layer projector and a new small LM: stage 1 ({stage1} steps) trains the projector on "
        f"captions, stage 2 ({stage2} steps) the projector and the LM on questions. Every scene below "
        "holds a colour-shape pair never seen in training."
    )
    report.text(f"Exact-match answers on {total} held-out questions: {right / total:.0%}.")
    report.table(["scene", "the scene", "the model's caption", "question", "question"], rows)
