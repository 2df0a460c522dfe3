"""`trainer_state/`: everything needed to continue a run bit-identically, written atomically as a whole.

Contents: `model.safetensors` (the weights at that step), `optimizer.safetensors` (the optimiser's
tensors under flattened keys `<param index>.<name>`), `rng.safetensors` (torch CPU/CUDA and numpy
generator states of every rank) and `state.json` (step, data position, elapsed time, the optimiser's
param groups and scalars, Python's generator states). No pickle anywhere. There is no scheduler
object to save: the learning rate is a pure function of the step (`train.optim.lr_at`).

Atomicity across several files: a checkpoint is first written completely into
`trainer_state.tmp-<step>/` (each file fsynced, `state.json` last); then the current `trainer_state/`
is renamed to `trainer_state.old/`, the new directory is renamed into place, and the old one deleted.
A crash at any point leaves `trainer_state/` or, between the two renames, `trainer_state.old/` intact;
`find_checkpoint` knows both. The run directory's top-level `model.safetensors` (what `alltokens.load`
reads) is then a hard link to the new weights, swapped in with one atomic rename.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from alltokens.io.checkpoint import (
    WEIGHTS,
    CheckpointError,
    atomic_write,
    load_into,
    load_weights,
    read_json,
    save_weights,
    write_json,
)

STATE_DIR = "trainer_state"
OLD_DIR = STATE_DIR + ".old"
TMP_PREFIX = STATE_DIR + ".tmp-"


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's generator states, split into tensors (for safetensors) and JSON scalars."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    scalars = {
        "python": {"version": version, "state": list(mt), "gauss": gauss},
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    return tensors, scalars


def restore_rng(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    py = scalars["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = scalars["numpy"]
    keys = tensors["numpy"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in tensors]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """optimizer.state_dict() -> flat tensors {'<idx>.<name>': t} and JSON (param groups, scalars)."""
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = t
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    # JSON turned tuples (AdamW's betas) into lists; only "params" is a real list.
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    run_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
    rng: list[tuple[dict[str, torch.Tensor], dict[str, Any]]],
) -> Path:
    """Write `trainer_state/` for the step in `info` atomically; `rng` holds every rank's generator states."""
    run_dir = Path(run_dir)
    tmp = run_dir / f"{TMP_PREFIX}{info['step']}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(tmp, model.state_dict())
    opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
    atomic_write(tmp / "optimizer.safetensors", lambda p: save_file(opt_tensors, str(p)))
    rng_tensors = {f"rank{r}.{k}": t for r, (ts, _) in enumerate(rng) for k, t in ts.items()}
    atomic_write(tmp / "rng.safetensors", lambda p: save_file(rng_tensors, str(p)))
    state = {**info, "optimizer": opt_meta, "rng": [scalars for _, scalars in rng]}
    write_json(tmp / "state.json", state)  # last: its presence marks a complete checkpoint

    current, old = run_dir / STATE_DIR, run_dir / OLD_DIR
    shutil.rmtree(old, ignore_errors=True)
    if current.exists():
        current.rename(old)
    tmp.rename(current)
    _fsync_dir(run_dir)
    shutil.rmtree(old, ignore_errors=True)

    link = run_dir / f".{WEIGHTS}.link"
    link.unlink(missing_ok=True)
    os.link(current / WEIGHTS, link)
    os.replace(link, run_dir / WEIGHTS)
    _fsync_dir(run_dir)
    return current


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint directory of a run, or None."""
    for name in (STATE_DIR, OLD_DIR):
        path = Path(run_dir) / name
        if (path / "state.json").exists():
            return path
    return None


def remove_partial(run_dir: str | Path) -> None:
    """Delete checkpoint directories a crash left half-written."""
    for path in Path(run_dir).glob(TMP_PREFIX + "*"):
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(
    run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], list[tuple[dict[str, torch.Tensor], dict[str, Any]]]]:
    """Load weights and optimiser state in place; returns (state.json, every rank's rng states)."""
    path = find_checkpoint(run_dir)
    if path is None:
        raise CheckpointError(f"no checkpoint to resume in {run_dir} ({STATE_DIR}/state.json not found)")
    state = read_json(path / "state.json")
    load_into(model, load_weights(path), source=str(path))
    opt_tensors = _load_tensors(path / "optimizer.safetensors")
    try:
        optimizer.load_state_dict(_join_optimizer(opt_tensors, state["optimizer"]))
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: optimizer state does not match the model's parameters: {e}") from None
    rng_tensors = _load_tensors(path / "rng.safetensors")
    rng = []
    for r, scalars in enumerate(state["rng"]):
        prefix = f"rank{r}."
        rng.append(({k[len(prefix) :]: t for k, t in rng_tensors.items() if k.startswith(prefix)}, scalars))
    return state, rng


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
