"""Recipe: train a language model on text files (`alltokens train lm`).

It wires existing parts together and defines no layers: a preset (`configs/lm-<name>.json`: model
fields, training defaults, block size, and the source they come from), a tokenizer, the token stream
of `data.text`, the `LM` model, the `next_token` objective and the generic `Trainer`.

The run directory is a loadable model at every checkpoint: `config.json` (our `LMConfig`, kind 'lm'),
`tokenizer.json`, `model.safetensors`, plus `train.json` (the resolved recipe and fingerprints of the
tokenizer and data), `metrics.jsonl`, `loss.png` and `trainer_state/`. A new run never writes into a
non-empty directory; `resume=True` continues one only if its recipe, tokenizer and data all match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from alltokens.data.text import WindowBatches, split_tokens, tokenize_files
from alltokens.models.lm import LM, LMConfig
from alltokens.nn.config import Config, ConfigError
from alltokens.tokenizers import Tokenizer, load_tokenizer
from alltokens.train import distributed as dist
from alltokens.train.config import TrainConfig
from alltokens.train.objectives import next_token
from alltokens.train.recipes import common
from alltokens.train.recipes.common import check_out_dir, check_resume, run_directory, sha256
from alltokens.train.trainer import Trainer


@dataclass
class LMRecipe(Config):
    """A preset: the model (its vocabulary comes from the tokenizer), the training, the data windows."""

    model: LMConfig = field(default_factory=LMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    block_size: int = 128  # tokens of context per training window
    val_fraction: float = 0.1  # the last part of the token stream is held out for validation
    description: str = ""
    source: str = ""  # where the numbers come from

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ConfigError(f"block_size must be positive, got {self.block_size}")


def preset_names() -> list[str]:
    return common.preset_names("lm")


def load_preset(preset: str | Path) -> LMRecipe:
    """A packaged preset by name ('tiny' reads `configs/lm-tiny.json`) or a preset JSON file's path."""
    return common.load_preset(preset, "lm", LMRecipe)


def resolve_recipe(
    preset: str | Path,
    tokenizer: Tokenizer,
    steps: int | None = None,
    batch_size: int | None = None,
    block_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    bf16: bool | None = None,
) -> LMRecipe:
    """The preset with the caller's overrides and the tokenizer's vocabulary filled in.

    A new `lr` scales `min_lr` by the same factor, keeping the preset's decay ratio. The model's
    context (`max_position_embeddings`) is the block size it trains on.
    """
    recipe = load_preset(preset)
    train = recipe.train
    overrides: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "seed": seed, "bf16": bf16}
    if lr is not None:
        overrides.update(lr=lr, min_lr=train.min_lr * lr / train.lr)
    train = dataclasses.replace(train, **{k: v for k, v in overrides.items() if v is not None})
    block = block_size or recipe.block_size
    model = dataclasses.replace(
        recipe.model,
        vocab_size=tokenizer.vocab_size,
        max_position_embeddings=block,
        bos_token_id=tokenizer.bos_id,
        eos_token_id=tokenizer.eos_id,
        pad_token_id=tokenizer.pad_id,
    )
    return dataclasses.replace(recipe, model=model, train=train, block_size=block)


def run_record(
    recipe: LMRecipe, preset: str | Path, tokenizer: Tokenizer, data: Sequence[str | Path]
) -> dict:
    """What `train.json` stores, and what a resume must match: recipe, tokenizer and data identities."""
    return {
        "preset": str(preset),
        "recipe": recipe.to_dict(),
        "tokenizer_sha256": common.tokenizer_sha256(tokenizer),
        "data_sha256": [sha256(Path(p).read_bytes()) for p in data],
        "data_files": [str(p) for p in data],
    }


def train_lm(
    data: Sequence[str | Path],
    tokenizer: str | Path,
    out: str | Path,
    preset: str | Path = "tiny",
    steps: int | None = None,
    batch_size: int | None = None,
    block_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    resume: bool = False,
    progress: bool = False,
    bf16: bool | None = None,
) -> Path:
    """Train (or with `resume`, continue) a language model on UTF-8 text files; returns the run dir.

    Runs unchanged under `torchrun --nproc_per_node N`: each rank samples its own shard of the
    training stream and only rank 0 writes.
    """
    out = Path(out)
    check_out_dir(out, resume)
    tok = load_tokenizer(tokenizer)
    recipe = resolve_recipe(preset, tok, steps, batch_size, block_size, lr, seed, bf16)
    record = run_record(recipe, preset, tok, data)
    if resume:
        check_resume(out, record)

    with run_directory(out, resume, recipe.model.to_dict(), tok, record):
        run(recipe, tok, data, out, resume, progress)
    return out


def run(
    recipe: LMRecipe, tok: Tokenizer, data: Sequence[str | Path], out: Path, resume: bool, progress: bool
) -> dict[str, Any]:
    """Build the data, model and trainer of a resolved recipe and train; returns the last metrics."""
    cfg = recipe.train
    train_tokens, val_tokens = split_tokens(tokenize_files(data, tok), recipe.val_fraction)
    rank, world = dist.rank(), dist.world_size()
    window = dict(batch_size=cfg.batch_size, block_size=recipe.block_size, rank=rank, world_size=world)
    train_data = WindowBatches(train_tokens, seed=cfg.seed, name="training data", **window)
    val_data = WindowBatches(val_tokens, seed=cfg.seed + 1, name="validation data", **window)

    torch.manual_seed(cfg.seed)
    model = LM(recipe.model)
    model.init_weights()
    trainer = Trainer(model, next_token, train_data, val_data, cfg, out, progress=progress)
    return trainer.fit(resume=resume)
