"""What every recipe does the same way: presets, the run directory, and the identity check of a resume.

- Presets are packaged JSON files `configs/<prefix>-<name>.json` (or any `.json` path), read into the
  recipe's own `Config` dataclass, so an unknown field is an error naming it.
- A new run never writes into a non-empty directory; `resume=True` continues one only if its
  `train.json` record (the resolved recipe and fingerprints of tokenizer and data) matches field by
  field, and the error names every field that differs.
- `run_directory` brackets a run: it starts torch.distributed when launched by torchrun, lets rank 0
  write the run's fixed files (config, tokenizer, record) once, and tears the group down afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import torch

from alltokens.io.checkpoint import CheckpointError, read_json, write_json
from alltokens.nn.config import Config, ConfigError
from alltokens.tokenizers import Tokenizer
from alltokens.train import distributed as dist
from alltokens.train.state import find_checkpoint

TRAIN_FILE = "train.json"
NOT_COMPARED = {"preset", "data_files"}  # names may be spelled differently; the content is what counts
R = TypeVar("R", bound=Config)


def preset_names(prefix: str) -> list[str]:
    """Names of the packaged presets `configs/<prefix>-*.json`."""
    files = resources.files("alltokens").joinpath("configs").iterdir()
    head = f"{prefix}-"
    return sorted(
        f.name[len(head) : -5] for f in files if f.name.startswith(head) and f.name.endswith(".json")
    )


def load_preset(preset: str | Path, prefix: str, recipe_class: type[R]) -> R:
    """A packaged preset by name ('tiny' reads `configs/<prefix>-tiny.json`) or a preset JSON file's path."""
    if str(preset).endswith(".json"):
        path = Path(preset)
        if not path.is_file():
            raise FileNotFoundError(f"preset file not found: {path}")
        text = path.read_text()
    else:
        entry = resources.files("alltokens").joinpath("configs", f"{prefix}-{preset}.json")
        if not entry.is_file():
            raise ValueError(
                f"unknown preset {preset!r}; known: {', '.join(preset_names(prefix))} (or a .json path)"
            )
        text = entry.read_text()
    try:
        return recipe_class.from_dict(json.loads(text))
    except json.JSONDecodeError as e:
        raise ConfigError(f"preset {preset}: invalid JSON: {e}") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    return sha256(tokenizer.hf.to_str().encode())


def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse a file, and a non-empty directory unless resuming (a run directory is never overwritten)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if not resume and out.exists() and any(out.iterdir()):
        raise ValueError(
            f"{out} is not empty; pass --resume to continue the run there, or choose a new --out "
            "(a run directory is never overwritten)"
        )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume(out: Path, record: dict[str, Any]) -> None:
    """Refuse to resume a run whose recipe, tokenizer or data differ, naming each differing field."""
    if find_checkpoint(out) is None:
        raise CheckpointError(
            f"nothing to resume in {out}: no trainer_state/ checkpoint (the run may have stopped before "
            "its first save); start a new run in an empty directory"
        )
    saved = {k: v for k, v in _flatten(read_json(out / TRAIN_FILE)).items() if k not in NOT_COMPARED}
    new = {k: v for k, v in _flatten(record).items() if k not in NOT_COMPARED}
    diffs = [
        f"{k}: saved {saved.get(k, '(absent)')!r}, requested {new.get(k, '(absent)')!r}"
        for k in sorted(set(saved) | set(new))
        if saved.get(k) != new.get(k)
    ]
    if diffs:
        raise ConfigError(f"cannot resume {out}: it was trained differently: " + "; ".join(diffs))


@contextlib.contextmanager
def run_directory(
    out: Path, resume: bool, config: dict[str, Any], tokenizer: Tokenizer, record: dict[str, Any]
) -> Iterator[None]:
    """Start torch.distributed if launched by torchrun; on a new run rank 0 creates `out` and writes
    `config.json`, the tokenizer and `train.json` (the record resume checks) while the other ranks
    wait, so the directory is loadable from the first checkpoint on; the body then trains."""
    started_group = dist.init_distributed()
    try:
        dist.barrier()  # every rank has checked the directory before rank 0 writes into it
        if dist.is_main() and not resume:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "config.json", config)
            tokenizer.save(out)
            write_json(out / TRAIN_FILE, record)
        dist.barrier()
        yield
    finally:
        if started_group:
            torch.distributed.destroy_process_group()
