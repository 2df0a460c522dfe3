"""One trainer for every model kind: it owns the loop, and knows nothing of text, images or audio.

It is given a model, an objective `(model, batch) -> (loss, metrics)`, an iterable of training batches,
an optional re-iterable of validation batches, a `TrainConfig` and a run directory. It does gradient
accumulation, clipping, optional bf16 autocast, the learning-rate schedule, held-out evaluation,
`metrics.jsonl` and `loss.png`, a progress bar (only when asked), atomic checkpoints (every
`save_every` steps, at the end, and on Ctrl-C or SIGTERM) and exact resume; under torchrun it wraps the
model in DistributedDataParallel and only rank 0 writes.

Exact resume: the weights, the optimiser state and every generator state are restored, the schedule is
a function of the step, and the training data is advanced to where it was: with `train_data.seek(n)`
when the data has it, otherwise by drawing and discarding the `n` batches already used. Data whose
order depends only on its seed and position (like `data.text.WindowBatches`) therefore replays exactly,
and the final weights equal those of an uninterrupted run bit for bit.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from alltokens.io.checkpoint import CheckpointError
from alltokens.train import distributed as dist
from alltokens.train.config import TrainConfig
from alltokens.train.metrics import MetricsLog, plot_loss
from alltokens.train.optim import lr_at, make_optimizer
from alltokens.train.progress import ProgressBar
from alltokens.train.state import (
    capture_rng,
    find_checkpoint,
    load_checkpoint,
    remove_partial,
    restore_rng,
    save_checkpoint,
)

_END = object()  # marks an exhausted data iterator
Objective = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, Any]]]


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C (or SIGTERM) once the checkpoint of the last finished step is saved."""


def to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a batch (a tensor, or dicts/lists/tuples of them) to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def freeze_except(model: nn.Module, trainable: Sequence[str]) -> None:
    """Train only the parameters whose names start with one of `trainable` (e.g. a VLM's projector)."""
    matched = False
    for name, p in model.named_parameters():
        keep = any(name.startswith(prefix) for prefix in trainable)
        p.requires_grad_(keep)
        matched |= keep
    if not matched:
        raise ValueError(f"no parameter name starts with any of {list(trainable)}")


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        train_data: Iterable[Any],
        val_data: Iterable[Any] | None,
        cfg: TrainConfig,
        run_dir: str | Path,
        trainable: Sequence[str] | None = None,
        progress: bool = False,
        device: torch.device | None = None,
    ):
        self.cfg, self.objective = cfg, objective
        self.train_data, self.val_data = train_data, val_data
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.rank, self.world = dist.rank(), dist.world_size()
        self.is_main = self.rank == 0
        self.device = device or dist.default_device()
        self.model = model.to(self.device)
        if trainable is not None:
            freeze_except(self.model, trainable)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.model, cfg)
        wrapped: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DistributedDataParallel(wrapped, device_ids=ids)
        self.wrapped = torch.compile(wrapped) if cfg.compile else wrapped
        self.log = MetricsLog(self.run_dir / "metrics.jsonl")
        self.step = 0  # optimiser updates done
        self.batches = 0  # training batches drawn (the data position)
        self.elapsed = 0.0  # seconds of training so far, across resumes
        self._stop_requests = 0

    # ---- the loop -------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to `cfg.steps`; returns the last logged metrics. `resume` continues the saved run."""
        if resume:
            self.load()
        else:
            if find_checkpoint(self.run_dir) is not None:
                raise CheckpointError(
                    f"{self.run_dir} already holds a checkpoint; resume it or choose another directory"
                )
            self._seed()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        data = self._data_iterator()
        bar = ProgressBar(self.cfg.steps, start=self.step) if self.progress and self.is_main else None
        try:
            with self._stop_on_signals():
                return self._loop(data, bar)
        finally:
            if bar is not None:
                bar.close()

    def _loop(self, data: Any, bar: ProgressBar | None) -> dict[str, Any]:
        cfg = self.cfg
        window = _Window()
        t_start, elapsed_before = time.perf_counter(), self.elapsed
        last: dict[str, Any] = {}
        self.model.train()
        while self.step < cfg.steps:
            lr = lr_at(self.step, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            for micro in range(cfg.grad_accum):
                batch = to_device(self._next_batch(data), self.device)
                syncing = micro == cfg.grad_accum - 1 or self.world == 1
                with contextlib.nullcontext() if syncing else self.wrapped.no_sync():
                    with self._autocast():
                        loss, metrics = self.objective(self.wrapped, batch)
                    (loss / cfg.grad_accum).backward()
                window.add_micro(metrics)
            if cfg.grad_clip > 0:
                window.add_grad_norm(torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1

            final = self.step == cfg.steps
            evaluate = (
                cfg.eval_every > 0
                and self.val_data is not None
                and (self.step % cfg.eval_every == 0 or final)
            )
            if self.step % cfg.log_every == 0 or evaluate or final:
                self.elapsed = elapsed_before + time.perf_counter() - t_start
                last = {"step": self.step, "lr": lr, **window.summary(self.world)}
                if evaluate:
                    last["val_loss"] = self.evaluate()
                last["elapsed"] = round(self.elapsed, 3)
                if self.is_main:
                    self.log.append(last)
                if bar is not None:
                    bar.update(self.step, **_bar_fields(last))
                window = _Window()
            stop = dist.any_rank(self._stop_requests > 0, self.device)
            if self.step % cfg.save_every == 0 or final or stop:
                self.elapsed = elapsed_before + time.perf_counter() - t_start
                self.save()
                window.t0 = time.perf_counter()  # tokens/s counts training time only
            if stop:
                raise TrainingInterrupted(
                    f"stopped at step {self.step} of {cfg.steps}; checkpoint saved in {self.run_dir}"
                )
        return last

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean objective loss over `eval_steps` validation batches (averaged over ranks)."""
        self.model.eval()
        total, n = torch.zeros((), device=self.device), 0
        for batch in itertools.islice(self.val_data, self.cfg.eval_steps):
            with self._autocast():
                loss, _ = self.objective(self.model, to_device(batch, self.device))
            total += loss.float()
            n += 1
        self.model.train()
        if n == 0:
            raise ValueError("the validation data yielded no batches")
        return dist.mean_across_ranks(total / n).item()

    # ---- checkpoints ----------------------------------------------------------------------------

    def save(self) -> None:
        """Checkpoint the current step (all ranks must call: the generator states are gathered)."""
        rng = dist.gather_objects(capture_rng())
        if self.is_main:
            info = {
                "step": self.step,
                "batches": self.batches,
                "elapsed": self.elapsed,
                "world_size": self.world,
            }
            save_checkpoint(self.run_dir, self.model, self.optimizer, info, rng)
            plot_loss(self.log.read(), self.run_dir / "loss.png")
        dist.barrier()

    def load(self) -> None:
        """Restore weights, optimiser, step, data position and this rank's generators from the run."""
        info, rng = load_checkpoint(self.run_dir, self.model, self.optimizer)
        if len(rng) != self.world:
            raise CheckpointError(
                f"{self.run_dir} was trained with {len(rng)} process(es); resume it with the same number "
                f"(now {self.world}) so that data order and generators match"
            )
        restore_rng(*rng[self.rank])
        self.step, self.batches, self.elapsed = info["step"], info["batches"], info["elapsed"]
        if self.is_main:
            remove_partial(self.run_dir)
            self.log.truncate_after(self.step)

    # ---- helpers --------------------------------------------------------------------------------

    def _seed(self) -> None:
        seed = self.cfg.seed + self.rank
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _data_iterator(self) -> Any:
        if hasattr(self.train_data, "seek"):
            self.train_data.seek(self.batches)
            return iter(self.train_data)
        data = iter(self.train_data)
        for _ in range(self.batches):
            self._draw(data)
        return data

    def _draw(self, data: Any) -> Any:
        batch = next(data, _END)
        if batch is _END:
            needed = self.cfg.steps * self.cfg.grad_accum
            raise ValueError(
                f"the training data ran out after {self.batches} batches; {self.cfg.steps} steps x "
                f"grad_accum {self.cfg.grad_accum} need {needed} (make it repeat, or train fewer steps)"
            )
        return batch

    def _next_batch(self, data: Any) -> Any:
        batch = self._draw(data)
        self.batches += 1
        return batch

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """Ctrl-C / SIGTERM ask the loop to stop after the current step; a second Ctrl-C stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            self._stop_requests += 1
            if self._stop_requests > 1:
                raise KeyboardInterrupt

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


class _Window:
    """Metrics summed between two log lines; turned into means and tokens/s only when logged."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.micro_steps = 0
        self.grad_norm: torch.Tensor | float = 0.0
        self.updates = 0
        self.tokens = 0
        self.t0 = time.perf_counter()

    def add_micro(self, metrics: dict[str, Any]) -> None:
        self.tokens += metrics.pop("tokens", 0)
        for k, v in metrics.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.micro_steps += 1

    def add_grad_norm(self, norm: torch.Tensor) -> None:
        self.grad_norm = self.grad_norm + norm
        self.updates += 1

    def summary(self, world: int) -> dict[str, float]:
        """Means over the window (and over ranks), and tokens/s over all ranks."""
        out = {
            k: dist.mean_across_ranks(v.detach().float() / self.micro_steps).item()
            for k, v in self.sums.items()
        }
        if self.updates:
            out["grad_norm"] = float(self.grad_norm) / self.updates
        out["tokens_per_s"] = self.tokens * world / max(time.perf_counter() - self.t0, 1e-9)
        return out


def _bar_fields(record: dict[str, Any]) -> dict[str, str]:
    fields = {"loss": f"{record['loss']:.4f}"} if "loss" in record else {}
    if "val_loss" in record:
        fields["val"] = f"{record['val_loss']:.4f}"
    fields["tok/s"] = f"{record['tokens_per_s']:,.0f}"
    return fields
