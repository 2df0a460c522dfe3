"""Linear probes: what a vision tower's patch tokens say about the shapes world, attribute by attribute.

A quality number (recall, exact match) says how well a model does, not why. A probe says what the image
features hold: for the object in each cell (colour, shape, size) and for the cell itself, a logistic
regression is fitted on the patch tokens of training-split scenes and scored on patch tokens of
held-out scenes. Attributes are probed on the patches that hold an object; the held-out score of colour,
shape and size counts only objects of a `HELD_OUT` colour x shape pair, so a tower that reads shape
through colour (a red thing is a circle, because in training red things were circles or squares) scores
at or below chance there while scoring well on training pairs. The converse does not hold: the probe,
fitted on training pairs, may itself lean on colour, which predicts shape among them. The tiny CLIP
preset retrieves held-out scenes by their captions at 100% (a colour x shape pair it never saw, told
from same-coloured near misses) while its shape probe scores 3-7% on them. The cell is probed on every
patch.

Patches and cells coincide only when the tower's grid is the scene's 3x3 grid (the tiny CLIP's 48-pixel
images in 16-pixel patches); other grids are refused rather than probed on patches that cut objects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from alltokens.data.shapes.render import render
from alltokens.data.shapes.scene import HELD_OUT, random_scene
from alltokens.tokenizers.image import to_pixels

ATTRIBUTES = ("cell", "colour", "shape", "size")


@dataclass(frozen=True)
class ProbeScore:
    attribute: str
    train: float  # accuracy on the training scenes' patches (how linearly readable it is at all)
    held_out: float  # on held-out scenes (objects of held-out pairs only, except for "cell")
    chance: float  # the most frequent class's share among the held-out patches probed


def patch_features(vit: torch.nn.Module, scenes: list, depth: int, seed: int) -> np.ndarray:
    """(scenes * 9, C) patch tokens after `depth` blocks, scene by scene, patches row-major."""
    cfg = vit.cfg
    images = [render(s, cfg.image_size, random.Random(f"probe:{seed}:{i}")) for i, s in enumerate(scenes)]
    pixels = to_pixels(images, cfg.image_size, mean=cfg.image_mean, std=cfg.image_std)  # (N, 3, h, w)
    with torch.inference_mode():
        hidden = vit(pixels, depth=depth)[:, int(cfg.cls_token) :]  # (N, 9, C)
    return hidden.reshape(-1, hidden.shape[-1]).float().numpy()


def labels(scenes: list) -> dict[str, list]:
    """Per patch: its cell index, and the colour, shape, size and (colour, shape) pair of its object
    (None for an empty cell)."""
    out: dict[str, list] = {name: [] for name in (*ATTRIBUTES, "pair")}
    for scene in scenes:
        by_cell = {o.row * 3 + o.col: o for o in scene.objects}
        for cell in range(9):
            o = by_cell.get(cell)
            out["cell"].append(cell)
            for name in ("colour", "shape", "size", "pair"):
                out[name].append(getattr(o, name) if o else None)
    return out


def probe_tower(
    vit: torch.nn.Module, layer: int = -2, train_scenes: int = 1500, test_scenes: int = 500, seed: int = 0
) -> list[ProbeScore]:
    """Probe the patch tokens of `layer` (-1 the last block's output, -2 the one before, no final norm)."""
    from sklearn.linear_model import LogisticRegression

    cfg = vit.cfg
    if cfg.grid != 3:
        raise ValueError(
            f"probing needs one patch per cell of the 3x3 scene grid; this tower cuts its "
            f"{cfg.image_size}px images into a {cfg.grid}x{cfg.grid} grid"
        )
    L = cfg.num_hidden_layers
    if not -L <= layer <= -1:
        raise ValueError(f"layer must be in -{L}..-1 for a {L}-layer tower, got {layer}")
    rng = random.Random(f"probe:{seed}")
    train = [random_scene(rng, "train") for _ in range(train_scenes)]
    test = [random_scene(rng, "heldout") for _ in range(test_scenes)]
    depth = L + 1 + layer
    x_train, x_test = patch_features(vit, train, depth, seed), patch_features(vit, test, depth, seed + 1)
    y_train, y_test = labels(train), labels(test)
    scores = []
    for name in ATTRIBUTES:
        fit = [i for i, v in enumerate(y_train[name]) if v is not None]
        score = [
            i
            for i, v in enumerate(y_test[name])
            if v is not None and (name == "cell" or y_test["pair"][i] in HELD_OUT)
        ]
        a_train, a_test = np.array(y_train[name], dtype=object), np.array(y_test[name], dtype=object)
        clf = LogisticRegression(max_iter=2000).fit(x_train[fit], a_train[fit].astype(str))
        _, counts = np.unique(a_test[score].astype(str), return_counts=True)
        scores.append(
            ProbeScore(
                name,
                train=float(clf.score(x_train[fit], a_train[fit].astype(str))),
                held_out=float(clf.score(x_test[score], a_test[score].astype(str))),
                chance=float(counts.max() / counts.sum()),
            )
        )
    return scores
