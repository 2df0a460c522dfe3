"""Recipe: a LLaVA-style VLM from a vision tower and a language model (`alltokens train vlm`).

LLaVA's two stages (Liu et al. 2023, section 4.2), both with the generic `Trainer`, the vision tower
frozen throughout:
1. feature alignment: only the projector trains, on captions (`trainable=["projector"]`);
2. instruction tuning: the projector and the LM train on conversations about each image (`turns`
   questions of different kinds, see `data.vqa`), with the loss on the answer tokens only (`next_token`
   with `loss_mask`); a `caption_fraction` of them also ask for the caption, so captioning survives.

Stage 1 assumes a pretrained LM, as LLaVA's does; with a new one it can only tune the projector to a
random LM, so the tiny preset keeps it short and stage 2 does the learning.

What limits quality on a CPU budget (measured on held-out and training scenes; the slow tests hold the
numbers):
- Not the vision tower any more: the tiny CLIP retrieves held-out scenes at 100% (`recipes.clip`), and
  its patch tokens hold each cell (90% by a linear probe) and colour (99%). With it, the preset scores
  30% exact match held out (44% on training scenes); 6000 stage-2 steps instead of 600 give 43% (65%).
- The new LM does not learn to pick the object a question names. Asked where an object is, it is right
  whenever the scene has one object; with two or three it names another object's place about half the
  time. Image tokens standing for exact colours and cells (no tower) do no better: 54% on position
  questions alone after 8000 steps, chance among the objects. Symbol tests with the same LM say why.
  The answer needs two hops: carry the named colour from the question to the answer position, then
  find the image token of that colour. With the colour word right before the answer (one hop), 9 slot
  ids and "Q <colour>" are learned by 3000 steps (80% / 70% with 2 / 3 objects). With three tokens
  between them, as in every chat prompt (the rest of the question, `<|end|><|assistant|>`), accuracy
  stays at chance for about 6000 steps and only then rises (77% / 60% at 7500). None of these shortened
  that plateau in 3000 steps: a third of the learning rate, an init std of 0.05 or 0.1, normalised
  queries and keys, a copy-the-colour auxiliary task, scenes with 2-3 objects only, the question before
  the image; nor batches of 64 (1250 steps) or six questions per sequence (2000 steps). In the VLM
  itself (400-600 steps) neither did twice the learning rate, 6 layers and 8 heads, scaled or
  normalised image tokens, captions in stage 1, or an LM pretrained on the conversations with the scene
  in words.
- Next: a way to form that circuit sooner. A prefix-LM mask (image and question attend both ways, as
  in PaliGemma) does in the symbol test: with seeds 1 and 2 it jumped at about 2000 steps and reached
  94-99% by 4000-5000, where the causal LM with the same seeds was at 36-72% with 3 objects; answers of
  two tokens (row, then column) delay the jump by about 1000 steps. With slot tokens made by a projector
  from continuous features (RGB x 10, cell one-hot), it formed by 1000-2000 steps with the prefix mask
  and not by 3000 without (seed 2). In the VLM itself it has not helped yet: position questions stayed
  at 54% after 6000 steps (53% after 4000 with oracle image tokens), and the full mix reached 42% held
  out after 5000; what else in the real prompt slows it is not yet found. Or a stage that gives the LM
  the steps it needs before the image is involved.

Parts: the vision tower is the `vision` directory's ViT, or its CLIP's image tower (our run directory or
a Hugging Face `CLIPModel` one). The LM is an LM directory (with its tokenizer, which must have our image
and chat special tokens), or "new": a small LM shaped by the preset, with the vision directory's
tokenizer (our CLIP recipe trains a BPE on the shapes world's captions and questions) or, if it has
none, that same BPE trained here. A new LM's context is the image tokens plus `text_context`.
Tiling (AnyRes, `max_tiles` > 1, under `max_image_tokens`) is a setting of the VLM it builds, so its
run directory tiles at inference too; the images of both stages are tiled the same way, and a new LM's
context leaves room for an image's largest layout. `canvas` [width, height] trains both stages on small
objects in large scenes (`data.shapes.canvas`): the tower-sized scene placed on a tile of a larger
picture, asked only what stays true there.

The run directory: `config.json` (kind 'vlm'), `tokenizer.json`, `train.json`, and `model.safetensors`,
which is the stage-1 model once stage 1 ends and the final model once stage 2 does. Stage 1 trains in
the run directory itself (`trainer_state/`, `metrics.jsonl`, `loss.png`), stage 2 in `stage2/`. Resume
continues whichever stage was running; a finished stage 1 is loaded, not redone. The same refusals as
the other recipes apply (`recipes.common`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alltokens.data.shapes.render import check_canvas
from alltokens.data.vqa import ChatFormat, VQABatches
from alltokens.io.checkpoint import save_weights
from alltokens.io.load import load_model
from alltokens.models.lm import LM, LMConfig
from alltokens.models.vit import ViT
from alltokens.models.vlm import VLM, VLMConfig, image_token_count
from alltokens.nn.config import Config, ConfigError
from alltokens.tokenizers import Tokenizer, load_tokenizer
from alltokens.tokenizers.text import TOKENIZER_FILE
from alltokens.tokenizers.tiling import most_image_tokens
from alltokens.train import distributed as dist
from alltokens.train.config import TrainConfig
from alltokens.train.objectives import next_token
from alltokens.train.recipes import common
from alltokens.train.recipes.clip import captions_tokenizer
from alltokens.train.recipes.common import check_out_dir, check_resume, run_directory
from alltokens.train.state import find_checkpoint
from alltokens.train.trainer import Trainer

STAGE2_DIR = "stage2"
DATA = ("shapes",)


@dataclass
class VLMRecipe(Config):
    """A preset: how images become tokens, the shape of a new LM, and the two stages' training."""

    lm: LMConfig = field(default_factory=LMConfig)  # a new LM's shape; vocabulary from the tokenizer
    text_context: int = 128  # a new LM's context beyond one image's tokens
    feature_layer: int = -2
    drop_cls: bool = True
    pool: int = 1
    max_tiles: int = 1  # AnyRes tiles per image (plus an overview); 1 = off
    max_image_tokens: int | None = None  # the VLM's default image-token budget; None = no cap
    canvas: list[int] | None = None  # [width, height]: train on scenes placed in a picture this large
    stage1: TrainConfig = field(default_factory=TrainConfig)
    stage2: TrainConfig = field(default_factory=TrainConfig)
    turns: int = 4  # question-answer turns per stage-2 conversation, each of a different kind
    caption_fraction: float = 0.2  # of stage-2 conversations that also ask for the caption
    vocab_size: int = 1024  # the BPE trained when neither the vision nor the LM directory has a tokenizer
    tokenizer_scenes: int = 1000
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.text_context <= 0:
            raise ConfigError(f"text_context must be positive, got {self.text_context}")
        if self.turns < 1:
            raise ConfigError(f"turns must be >= 1, got {self.turns}")
        if not 0 <= self.caption_fraction <= 1:
            raise ConfigError(f"caption_fraction must be in [0, 1], got {self.caption_fraction}")
        if self.canvas is not None and len(self.canvas) != 2:
            raise ConfigError(f"canvas must be [width, height], got {self.canvas}")


def load_preset(preset: str | Path) -> VLMRecipe:
    """A packaged preset by name ('tiny' reads `configs/vlm-tiny.json`) or a preset JSON file's path."""
    return common.load_preset(preset, "vlm", VLMRecipe)


def vision_tower(path: str | Path) -> ViT:
    """The ViT of a ViT directory, or the image tower of a CLIP directory (ours or Hugging Face's)."""
    cfg, model = load_model(path)
    if cfg.kind == "vit":
        return model
    if cfg.kind == "clip":
        return model.vision
    raise ValueError(f"--vision {path} holds a {cfg.kind!r} model; a VLM needs a ViT or CLIP directory")


def language_model(
    path: str | Path, vision_dir: Path, recipe: VLMRecipe, image_tokens: int
) -> tuple[LM, Tokenizer]:
    """The LM of an LM directory with its tokenizer, or for "new" a fresh one (see module docstring)."""
    if str(path) != "new":
        cfg, model = load_model(path)
        if cfg.kind != "lm":
            raise ValueError(
                f"--lm {path} holds a {cfg.kind!r} model; give a language model directory or 'new'"
            )
        return model, load_tokenizer(path)
    if (vision_dir / TOKENIZER_FILE).exists():
        tok = load_tokenizer(vision_dir)
    else:
        tok = captions_tokenizer(recipe.vocab_size, recipe.tokenizer_scenes)
    cfg = dataclasses.replace(
        recipe.lm,
        vocab_size=tok.vocab_size,
        max_position_embeddings=image_tokens + recipe.text_context,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
    )
    model = LM(cfg)
    model.init_weights()
    return model, tok


def resolve_recipe(
    preset: str | Path, stage1_steps: int | None, stage2_steps: int | None, seed: int
) -> VLMRecipe:
    recipe = load_preset(preset)
    stage1 = dataclasses.replace(recipe.stage1, seed=seed, steps=stage1_steps or recipe.stage1.steps)
    stage2 = dataclasses.replace(recipe.stage2, seed=seed, steps=stage2_steps or recipe.stage2.steps)
    return dataclasses.replace(recipe, stage1=stage1, stage2=stage2)


def image_next_token(model: VLM, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """`next_token` with the batch's images spliced into their placeholders: each row's image is its
    tiles (one without tiling), the batch's tiles in row order, so they fill the placeholders in order."""
    return next_token(functools.partial(model, pixels=batch["pixels"]), batch)


def train_vlm(
    vision: str | Path,
    lm: str | Path,
    out: str | Path,
    data: str = "shapes",
    preset: str | Path = "tiny",
    stage1_steps: int | None = None,
    stage2_steps: int | None = None,
    seed: int = 0,
    resume: bool = False,
    progress: bool = False,
) -> Path:
    """Train (or with `resume`, continue) a VLM in two stages; returns the run directory."""
    out = Path(out)
    check_out_dir(out, resume)
    if data not in DATA:
        raise ValueError(f"unknown VLM data {data!r}; known: {', '.join(DATA)}")
    recipe = resolve_recipe(preset, stage1_steps, stage2_steps, seed)
    torch.manual_seed(seed)
    tower = vision_tower(vision)
    per_tile = image_token_count(tower.cfg, recipe.drop_cls, recipe.pool)
    image_tokens = most_image_tokens(per_tile, recipe.max_tiles, recipe.max_image_tokens)
    lm_model, tok = language_model(lm, Path(vision), recipe, image_tokens)
    chat = ChatFormat(tok)
    cfg = VLMConfig(
        vision=tower.cfg,
        lm=lm_model.cfg,
        image_token_id=chat.image_id,
        feature_layer=recipe.feature_layer,
        drop_cls=recipe.drop_cls,
        pool=recipe.pool,
        max_tiles=recipe.max_tiles,
        max_image_tokens=recipe.max_image_tokens,
    )
    if recipe.canvas is not None:  # before the run directory is made
        check_canvas(tower.cfg.image_size, tuple(recipe.canvas), (0, 0))
    model = VLM(cfg)  # the projector keeps torch's default init, drawn from the seed
    model.vision.load_state_dict(tower.state_dict())
    model.lm.load_state_dict(lm_model.state_dict())
    record = {
        "preset": str(preset),
        "recipe": recipe.to_dict(),
        "vision": str(Path(vision).resolve()),
        "lm": "new" if str(lm) == "new" else str(Path(lm).resolve()),
        "tokenizer_sha256": common.tokenizer_sha256(tok),
        "data": data,
    }
    if resume:
        check_resume(out, record)

    with run_directory(out, resume, cfg.to_dict(), tok, record):
        run(model, chat, recipe, out, resume, progress)
    return out


def run(model: VLM, chat: ChatFormat, recipe: VLMRecipe, out: Path, resume: bool, progress: bool) -> None:
    """Both stages; each resumes from its own checkpoint when there is one."""
    cfg = model.cfg
    stages = [
        (recipe.stage1, out, ["projector"], dict(task="caption")),
        (
            recipe.stage2,
            out / STAGE2_DIR,
            ["projector", "lm."],
            dict(turns=recipe.turns, caption_fraction=recipe.caption_fraction),
        ),
    ]
    for i, (train, run_dir, trainable, task) in enumerate(stages):
        batches = dict(
            chat=chat,
            cfg=cfg,
            batch_size=train.batch_size,
            rank=dist.rank(),
            world_size=dist.world_size(),
            context=cfg.lm.max_position_embeddings,
            canvas=recipe.canvas,
            **task,
        )
        seed = train.seed + 2 * i  # each stage and its validation see scenes of their own
        train_data = VQABatches(seed=seed, **batches)
        val_data = VQABatches(seed=seed + 1, **batches)
        trainer = Trainer(model, image_next_token, train_data, val_data, train, run_dir, trainable, progress)
        trainer.fit(resume=resume and find_checkpoint(run_dir) is not None)
    if dist.is_main():  # stage 1's trainer left its model at the top; the final one replaces it
        save_weights(out, model.state_dict())
