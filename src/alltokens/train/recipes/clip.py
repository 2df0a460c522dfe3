"""Recipe: train a CLIP on image-caption pairs (`alltokens train clip`).

It wires existing parts together and defines no layers: a preset (`configs/clip-<name>.json`: the
model, its image size, training defaults, the tokenizer's size), a text tokenizer, the image-caption
batches of `data.image_text`, the `CLIP` model, the `contrastive` objective and the generic `Trainer`.

The tokenizer is a small byte-level BPE trained on the text of the worlds the project makes: every
caption phrasing and question-answer pair of `tokenizer_scenes` training scenes and every digit
caption. The vocabulary of those worlds is a few dozen words, so the BPE stops at about 500 ids with
every word one token: a three-object caption is about 32 tokens instead of 150 bytes, and the text
tower's cost grows with the tokens. The same file serves the VLM, whose questions and answers it
already covers. Text from a user's folder still encodes (byte-level BPE has no unknown tokens), only
in more pieces.

What it took to make a small CLIP learn on a CPU budget (measured on the shapes world):
- At initialisation every image embeds almost alike (the [CLS] token or the mean over patches is
  dominated by the background) and so does every caption; with [CLS] or mean pooling the loss stayed
  at log(batch) for 400+ steps. Max pooling over patch tokens (`ViTConfig.pooling = "max"`) picks out
  the few patches holding an object, and the loss falls from the first steps.
- In a random batch colour words alone tell most captions apart, so the towers learn colours and
  little else; `data.image_text` therefore follows every scene with near misses (one object moved,
  resized, recoloured or reshaped) and trains only on captions that say where things are.
- Places were learned last, and slowly. A max over patch tokens keeps which objects are there but
  not which cell holds each, so two scenes with the same objects in other cells pool alike: with max
  pooling alone, 65-67% text-to-image recall@1 on 100 held-out scenes after 900 steps, most misses
  the right objects in the wrong cells. Pooling "max_grid" adds a zero-initialised per-cell readout
  of the patch grid (`models.vit`): 100% after the 'tiny' preset's 900 steps in four seeds, and
  94-96% on plainly drawn scenes. Wider towers, a larger initial temperature, more "move" near
  misses, 8-pixel patches, a convolutional stem and a larger position-table init did less.
- The start is a plateau near log(batch), while every image and every caption still embed alike. With
  20 warmup steps some seeds stayed there for 350 steps and ended at 74-79%; 100 warmup steps left
  it within 150 steps in every seed tried.

The run directory is a loadable model at every checkpoint: `config.json` (kind 'clip'),
`tokenizer.json`, `model.safetensors`, plus `train.json`, `metrics.jsonl`, `loss.png` and
`trainer_state/`, with the same refusals as `train lm` (see `recipes.common`).
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from alltokens.data.image_text import ImageTextBatches, image_text_sources
from alltokens.models.clip import CLIP, CLIPConfig
from alltokens.nn.config import Config, ConfigError
from alltokens.tokenizers import Tokenizer, byte_tokenizer, train_bpe
from alltokens.train import distributed as dist
from alltokens.train.config import TrainConfig
from alltokens.train.objectives import contrastive
from alltokens.train.recipes import common
from alltokens.train.recipes.common import check_out_dir, check_resume, run_directory
from alltokens.train.trainer import Trainer


@dataclass
class CLIPRecipe(Config):
    """A preset: the model (its text vocabulary comes from the tokenizer) and the training."""

    model: CLIPConfig = field(default_factory=CLIPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    vocab_size: int = 1024  # of the BPE trained on the worlds' text; 0 = the byte tokenizer
    tokenizer_scenes: int = 1000  # shapes scenes whose captions and questions train the BPE
    description: str = ""
    source: str = ""  # where the numbers come from

    def __post_init__(self) -> None:
        if self.vocab_size < 0 or self.tokenizer_scenes <= 0:
            raise ConfigError(
                f"vocab_size must be >= 0 and tokenizer_scenes positive, got {self.vocab_size}, "
                f"{self.tokenizer_scenes}"
            )


def preset_names() -> list[str]:
    return common.preset_names("clip")


def load_preset(preset: str | Path) -> CLIPRecipe:
    """A packaged preset by name ('tiny' reads `configs/clip-tiny.json`) or a preset JSON file's path."""
    return common.load_preset(preset, "clip", CLIPRecipe)


def world_text(n_scenes: int, seed: int = 0) -> str:
    """Every caption phrasing and question-answer pair of `n_scenes` training scenes, and every
    phrasing of every digit caption, one per line: the corpus of the captions tokenizer."""
    from alltokens.data.digits import CAPTIONS, DIGIT_NAMES
    from alltokens.data.shapes import captions, questions, random_scene

    rng = random.Random(f"tokenizer:{seed}")
    lines = []
    for _ in range(n_scenes):
        scene = random_scene(rng)
        lines += captions(scene)
        lines += [f"{qa.question} {qa.answer}" for qa in questions(scene, rng)]
    lines += [t.format(d=d, name=name) for t in CAPTIONS for d, name in enumerate(DIGIT_NAMES)]
    return "\n".join(lines) + "\n"


def captions_tokenizer(vocab_size: int, n_scenes: int) -> Tokenizer:
    """The BPE of `world_text` (deterministic), or the byte tokenizer when `vocab_size` is 0."""
    if vocab_size == 0:
        return byte_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "world.txt"
        corpus.write_text(world_text(n_scenes))
        return train_bpe([corpus], vocab_size=vocab_size)


def resolve_recipe(
    preset: str | Path,
    tokenizer: Tokenizer,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
) -> CLIPRecipe:
    """The preset with the caller's overrides and the tokenizer's vocabulary filled in; a new `lr`
    scales `min_lr` by the same factor."""
    recipe = load_preset(preset)
    train = recipe.train
    overrides: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "seed": seed}
    if lr is not None:
        overrides.update(lr=lr, min_lr=train.min_lr * lr / train.lr)
    train = dataclasses.replace(train, **{k: v for k, v in overrides.items() if v is not None})
    text = dataclasses.replace(
        recipe.model.text, vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id or 0
    )
    model = dataclasses.replace(recipe.model, text=text)
    return dataclasses.replace(recipe, model=model, train=train)


def train_clip(
    data: str | Path,
    out: str | Path,
    preset: str | Path = "tiny",
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    resume: bool = False,
    progress: bool = False,
) -> Path:
    """Train (or with `resume`, continue) a CLIP on 'shapes', 'digits' or a folder; returns the run dir."""
    out = Path(out)
    check_out_dir(out, resume)
    recipe = load_preset(preset)
    tok = captions_tokenizer(recipe.vocab_size, recipe.tokenizer_scenes)
    recipe = resolve_recipe(preset, tok, steps, batch_size, lr, seed)
    size = recipe.model.vision.image_size
    train_source, val_source, data_id = image_text_sources(data, recipe.train.seed, size)
    record = {
        "preset": str(preset),
        "recipe": recipe.to_dict(),
        "tokenizer_sha256": common.tokenizer_sha256(tok),
        "data": data_id,
    }
    if resume:
        check_resume(out, record)

    with run_directory(out, resume, recipe.model.to_dict(), tok, record):
        vision = recipe.model.vision
        batches = dict(
            tokenizer=tok,
            batch_size=recipe.train.batch_size,
            image_size=size,
            context=recipe.model.text.max_position_embeddings,
            mean=vision.image_mean,
            std=vision.image_std,
            rank=dist.rank(),
            world_size=dist.world_size(),
        )
        train_data = ImageTextBatches(train_source, **batches)
        val_data = ImageTextBatches(val_source, **batches)
        torch.manual_seed(recipe.train.seed)
        model = CLIP(recipe.model)
        model.init_weights()
        Trainer(model, contrastive, train_data, val_data, recipe.train, out, progress=progress).fit(resume)
    return out
