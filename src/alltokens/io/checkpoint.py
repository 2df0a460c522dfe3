"""Checkpoint files: safetensors weights (sharded when large) and JSON, always written atomically.

A write goes to a temporary file in the same directory, is flushed and fsynced, then renamed over the
old name. A crash at any moment leaves either the old file or the new one, never a torn file.
Weights are only ever read with safetensors (no pickle).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


class CheckpointError(RuntimeError):
    """A checkpoint directory that is missing, incomplete, corrupt or unsafe to read."""


def atomic_write(path: str | Path, write: Callable[[Path], None], durable: bool = True) -> None:
    """Call `write(tmp_path)`, fsync it, then rename it to `path` (atomic on POSIX).

    `durable=False` skips both fsyncs: a crash of the process still never leaves a torn file, and a
    writer of thousands of small files (a data set) makes them durable with one `os.sync()` instead of
    paying a journal commit per file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the final file the usual mode
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def save_weights(
    directory: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write `model.safetensors` atomically. Tied weights are stored once (safetensors refuses aliases)."""
    unique, seen = {}, {}
    for name, t in state.items():
        key = (t.data_ptr(), t.shape, t.stride()) if t.numel() else None
        if key is not None and key in seen:
            continue
        seen[key] = name
        unique[name] = t.detach().contiguous().cpu()
    meta = {"format": "pt", **(metadata or {})}
    atomic_write(Path(directory) / WEIGHTS, lambda p: save_file(unique, str(p), metadata=meta))


def load_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """Read `model.safetensors` or a sharded set listed in `model.safetensors.index.json`."""
    directory = Path(directory)
    if (
        (directory / "pytorch_model.bin").exists()
        and not (directory / WEIGHTS).exists()
        and not (directory / WEIGHTS_INDEX).exists()
    ):
        raise CheckpointError(
            f"{directory} holds only pytorch_model.bin, a pickle file that can run arbitrary code when "
            "loaded; alltokens reads safetensors only. Convert it once in a trusted environment "
            "(e.g. transformers' save_pretrained(safe_serialization=True))."
        )
    if (directory / WEIGHTS).exists():
        files = [directory / WEIGHTS]
    elif (directory / WEIGHTS_INDEX).exists():
        index = read_json(directory / WEIGHTS_INDEX)
        files = [directory / name for name in sorted(set(index.get("weight_map", {}).values()))]
        if not files:
            raise CheckpointError(f"{directory / WEIGHTS_INDEX} lists no shards")
    else:
        raise CheckpointError(f"no {WEIGHTS} (or sharded {WEIGHTS_INDEX}) in {directory}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        if not f.exists():
            raise CheckpointError(f"weight shard {f} is missing")
        try:
            state.update(load_file(str(f)))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{f} is not a readable safetensors file: {e}") from None
    return state


def load_into(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint", assign: bool = False
) -> None:
    """Strict `load_state_dict` that accepts a tied weight stored once under any of its names.

    With `assign` the model's parameters become the state's tensors (cast to each parameter's dtype;
    a view, such as a converter's transpose or slice of a fused weight, copied to its own storage)
    instead of being copied into: for a model built by `empty_parameters`, whose parameters hold no
    memory, so loading costs the weights once. Tied names are tied again to the tensor loaded."""
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    expected = model.state_dict()
    wrong = [
        f"{name} {tuple(t.shape)} (model needs {tuple(expected[name].shape)})"
        for name, t in state.items()
        if name in expected and t.shape != expected[name].shape
    ]
    if wrong:
        raise CheckpointError(f"{source} does not match the model config: wrong shapes {wrong[:8]}")
    if assign:  # each parameter its own contiguous storage of its dtype (a converter's views are not)
        for name, t in state.items():
            if name in expected:
                t = t.to(expected[name].dtype)
                whole = t.is_contiguous() and t.untyped_storage().nbytes() == t.numel() * t.element_size()
                state[name] = t if whole else t.contiguous().clone()
    result = model.load_state_dict(state, strict=False, assign=assign)
    loaded = set(state)
    missing = [
        name
        for name in result.missing_keys
        if not any(n in loaded for g in groups.values() if name in g for n in g)
    ]
    problems = []
    if missing:
        problems.append(f"missing weights {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if result.unexpected_keys:
        extra = result.unexpected_keys
        problems.append(f"unexpected weights {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    if problems:
        raise CheckpointError(f"{source} does not match the model config: " + "; ".join(problems))
    if assign:
        for names in groups.values():
            kept = model.get_parameter(next(n for n in names if n in loaded))
            for name in names:
                owner, _, leaf = name.rpartition(".")
                model.get_submodule(owner)._parameters[leaf] = kept


@contextlib.contextmanager
def empty_parameters() -> Iterator[None]:
    """Build modules whose parameters live on the meta device (shapes, no memory, no init) while their
    buffers (RoPE tables, grids) are computed as usual: the model to `load_into(..., assign=True)`.
    The trick of accelerate's `init_empty_weights(include_buffers=False)`."""
    register = torch.nn.Module.register_parameter

    def on_meta(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = torch.nn.Parameter(param.to("meta"), param.requires_grad)

    torch.nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register
