"""Training-step benchmark: our trainer against nanoGPT on the 'baby' character-level Shakespeare run.

The configuration is the one nanoGPT's README gives for a laptop CPU: 4 layers, 4 heads, 128 wide,
block 64, batch 12, no dropout, AdamW (lr 1e-3 to 1e-4, beta2 0.99, weight decay 0.1, warmup 100,
cosine to the last step), gradient clipping at 1.0, float32, no compile, 2000 iterations. Each side
trains in its own subprocess (so peak RSS is per side) with the same seed and thread count:

- nanoGPT: its own `model.py` (`GPT`, `GPTConfig`, `configure_optimizers`) imported from a checkout
  the user provides, driven by the loop of its `train.py` (memmapped `get_batch`, `get_lr`, clip,
  step) on its `shakespeare_char` data (65-character vocabulary, first 90% train, last 10% val);
- ours: the real recipe, `alltokens.train.recipes.lm.train_lm` with the byte tokenizer and the
  `shakespeare-baby` preset, which writes a run directory as `alltokens train lm` does.

Fairness on a shared machine: the two processes take turns, `--turn` iterations at a time (each
blocks in an optimiser-step hook while the other runs), so a burst of background load hits both
sides alike instead of whichever happened to run then. Time spent waiting for a turn is subtracted.

ms/iteration is the time between consecutive optimiser steps, measured the same way on both sides
(a global optimiser-step post-hook), after a warm-up, leaving out the iterations during which our
trainer evaluated or saved a checkpoint. Validation loss is computed after training by one function
for both sides: mean cross-entropy per character over the whole validation text (nanoGPT's last 10%)
cut into non-overlapping 64-character windows. The text is ASCII, so a byte and a character are one
token each and the two losses are comparable.

Get nanoGPT with `git clone https://github.com/karpathy/nanoGPT`, then from the repository root:

    python bench/train_shakespeare.py --nanogpt ../nanoGPT --data ../shared/data/tinyshakespeare.txt

This is a script, not a test: a full run takes several minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BLOCK, BATCH = 64, 12
LAYERS, HEADS, WIDTH = 4, 4, 128
LR, MIN_LR, WARMUP, WEIGHT_DECAY, BETAS, CLIP = 1e-3, 1e-4, 100, 0.1, (0.9, 0.99), 1.0
VAL_FRACTION = 0.1  # nanoGPT's prepare.py: first 90% train, last 10% val
WARMUP_ITERS = 10  # iterations left out of the timing (allocator and kernel warm-up, compilation)
EVAL_BATCH = 64  # windows per forward pass of the shared validation
SIDES = ("nanogpt", "ours")


# ---- shared by both sides ------------------------------------------------------------------------


def split_text(path: Path) -> tuple[str, str]:
    """(train, validation) text: nanoGPT's split of the characters."""
    text = path.read_text(encoding="utf-8")
    n = int(len(text) * (1 - VAL_FRACTION))
    return text[:n], text[n:]


def validation_loss(logits_fn, val_ids: list[int]) -> float:
    """Mean next-token cross-entropy over non-overlapping BLOCK-token windows of the validation ids.

    `logits_fn(x)` maps (B, BLOCK) int64 ids to (B, BLOCK, V) logits; both sides use this function on
    the same windows of the same text, so their losses differ only by their models.
    """
    import torch
    import torch.nn.functional as F

    ids = torch.tensor(val_ids, dtype=torch.long)
    n_windows = (len(ids) - 1) // BLOCK
    x = ids[: n_windows * BLOCK].view(n_windows, BLOCK)  # (N, T)
    y = ids[1 : n_windows * BLOCK + 1].view(n_windows, BLOCK)  # (N, T)
    total = 0.0
    with torch.no_grad():
        for i in range(0, n_windows, EVAL_BATCH):
            logits = logits_fn(x[i : i + EVAL_BATCH]).float()  # (B, T, V)
            targets = y[i : i + EVAL_BATCH].flatten()
            total += F.cross_entropy(logits.flatten(0, 1), targets, reduction="sum").item()
    return total / y.numel()


class StepClock:
    """Times a training loop from outside it, with global hooks: the first forward pass starts the
    clock, every optimiser step is timestamped, and every `turn` steps the process hands the machine
    to the other side (writes a byte to `done_fd`, blocks until one arrives on `go_fd`)."""

    def __init__(self, turn: int, go_fd: int, done_fd: int) -> None:
        from torch.nn.modules.module import register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.turn, self.go_fd, self.done_fd = turn, go_fd, done_fd
        self.start = 0.0
        self.times: list[float] = []  # times[i]: end of update i + 1
        self.waits: dict[int, float] = {}  # seconds spent waiting inside interval i
        self.step_hook = register_optimizer_step_post_hook(self._tick)
        self.forward_hook = register_module_forward_pre_hook(self._first_forward)

    def _wait_for_turn(self) -> float:
        t0 = time.perf_counter()
        if not os.read(self.go_fd, 1):
            raise SystemExit("the benchmark driver went away")
        return time.perf_counter() - t0

    def _first_forward(self, *_) -> None:
        self.forward_hook.remove()
        os.write(self.done_fd, b".")  # ready: set-up done, nothing timed yet
        self._wait_for_turn()
        self.start = time.perf_counter()

    def _tick(self, *_) -> None:
        self.times.append(time.perf_counter())
        n = len(self.times)
        if n % self.turn == 0:
            os.write(self.done_fd, b".")
            self.waits[n] = self._wait_for_turn()

    def summary(self, skip_after: set[int]) -> dict[str, float]:
        """ms/iteration after warm-up, leaving out updates that follow a step in `skip_after` (steps
        after which the trainer evaluated or saved); `first_iter_s` includes any compilation."""
        self.step_hook.remove()
        t = self.times
        elapsed = {i: t[i] - t[i - 1] - self.waits.get(i, 0.0) for i in range(1, len(t))}  # update i + 1
        timed = [elapsed[i] * 1e3 for i in range(WARMUP_ITERS, len(t)) if i not in skip_after]
        return {
            "ms_per_iter_mean": statistics.fmean(timed),
            "ms_per_iter_median": statistics.median(timed),
            "first_iter_s": t[0] - self.start,
            "train_s": t[0] - self.start + sum(elapsed.values()),  # evaluations and checkpoints included
            "timed_iters": len(timed),
        }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ---- nanoGPT side --------------------------------------------------------------------------------


def run_nanogpt(args: argparse.Namespace, clock: StepClock) -> dict:
    """nanoGPT's train.py loop (CPU, float32, no compile, no DDP) around its own model.py."""
    import numpy as np
    import torch

    sys.path.insert(0, str(args.nanogpt))
    from model import GPT, GPTConfig  # nanoGPT's model.py

    train_text, val_text = split_text(args.data)
    chars = sorted(set(train_text + val_text))  # prepare.py's vocabulary
    stoi = {c: i for i, c in enumerate(chars)}
    with tempfile.TemporaryDirectory() as tmp:
        train_bin = Path(tmp, "train.bin")
        np.array([stoi[c] for c in train_text], dtype=np.uint16).tofile(train_bin)

        def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
            data = np.memmap(train_bin, dtype=np.uint16, mode="r")
            ix = torch.randint(len(data) - BLOCK, (BATCH,))
            x = torch.stack([torch.from_numpy(data[i : i + BLOCK].astype(np.int64)) for i in ix])
            y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + BLOCK].astype(np.int64)) for i in ix])
            return x, y

        def get_lr(it: int) -> float:
            if it < WARMUP:
                return LR * (it + 1) / (WARMUP + 1)
            ratio = (it - WARMUP) / (args.iters - WARMUP)
            return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)

        torch.manual_seed(args.seed)
        gpt_cfg = GPTConfig(
            block_size=BLOCK, vocab_size=len(chars), n_layer=LAYERS, n_head=HEADS, n_embd=WIDTH,
            dropout=0.0, bias=False,
        )  # fmt: skip
        model = GPT(gpt_cfg)
        optimizer = model.configure_optimizers(WEIGHT_DECAY, LR, BETAS, "cpu")
        x, y = get_batch()
        for it in range(args.iters):
            for group in optimizer.param_groups:
                group["lr"] = get_lr(it)
            _, loss = model(x, y)
            x, y = get_batch()  # prefetch, as train.py does
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss.item()  # train.py logs every iteration in the README's CPU command
    timing = clock.summary(skip_after=set())

    model.eval()
    # given targets, nanoGPT's forward returns the logits of every position (else only the last)
    val = validation_loss(lambda ids: model(ids, ids)[0], [stoi[c] for c in val_text])
    return {**timing, "val_loss": val, "dtype": "float32", "vocab_size": len(chars)}


# ---- our side ------------------------------------------------------------------------------------


def run_ours(args: argparse.Namespace, clock: StepClock) -> dict:
    """Our recipe end to end: `train_lm(..., preset='shakespeare-baby')`, then the saved model."""
    from alltokens.io.load import load_model
    from alltokens.tokenizers import load_tokenizer
    from alltokens.train.recipes.lm import load_preset, train_lm

    recipe = load_preset("shakespeare-baby")
    recipe.train.bf16, recipe.train.compile = args.bf16, args.compile
    cfg = recipe.train
    with tempfile.TemporaryDirectory() as tmp:
        preset = Path(tmp, "preset.json")
        preset.write_text(json.dumps(recipe.to_dict()))
        run = train_lm(
            [args.data], "bytes", Path(tmp, "run"), preset=preset, steps=args.iters, seed=args.seed
        )
        eval_or_save = {
            s
            for s in range(1, args.iters + 1)
            if (cfg.eval_every and s % cfg.eval_every == 0) or s % cfg.save_every == 0
        }
        timing = clock.summary(eval_or_save)
        records = [json.loads(line) for line in Path(run, "metrics.jsonl").read_text().splitlines()]
        _, model = load_model(run)

    tok = load_tokenizer("bytes")
    val = validation_loss(lambda ids: model(ids), tok.encode(split_text(args.data)[1]))
    dtype = "bfloat16 autocast" if cfg.bf16 else "float32"
    return {
        **timing,
        "val_loss": val,
        "trainer_val_loss": [r["val_loss"] for r in records if "val_loss" in r][-1],
        "dtype": dtype + (", torch.compile" if cfg.compile else ""),
        "vocab_size": tok.vocab_size,
    }


# ---- driver --------------------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    clock = StepClock(args.turn, args.go_fd, args.done_fd)
    result = (run_nanogpt if args.worker == "nanogpt" else run_ours)(args, clock)
    result["peak_rss_mib"] = peak_rss_mib()
    args.result.write_text(json.dumps(result))


class Side:
    """A worker subprocess and the two pipes of its turns."""

    def __init__(self, name: str, args: argparse.Namespace, tmp: Path) -> None:
        self.name, self.result, self.log = name, tmp / f"{name}.json", tmp / f"{name}.log"
        go_read, self.go = os.pipe()
        self.done, done_write = os.pipe()
        cmd = [sys.executable, __file__, *sys.argv[1:], "--worker", name, "--result", str(self.result)]
        cmd += ["--go-fd", str(go_read), "--done-fd", str(done_write)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=(go_read, done_write)
            )
        os.close(go_read)
        os.close(done_write)

    def ready(self) -> bool:
        """Wait until the worker has set up and reached its first forward pass (False: it exited)."""
        return bool(os.read(self.done, 1))

    def take_turn(self) -> bool:
        """Let the worker run until it hands back (True) or exits (False)."""
        try:
            os.write(self.go, b".")
        except BrokenPipeError:
            return False
        return bool(os.read(self.done, 1))

    def finish(self) -> dict:
        os.close(self.go)
        if self.proc.wait() != 0:
            raise SystemExit(f"the {self.name} run failed:\n{self.log.read_text()}")
        return json.loads(self.result.read_text())


def run_sides(names: list[str], args: argparse.Namespace, tmp: Path) -> tuple[dict, list[float]]:
    """Run the workers in alternating turns; returns their results and the load average per round."""
    sides = [Side(name, args, tmp) for name in names]
    running, loads = [side for side in sides if side.ready()], []
    while running:
        loads.append(os.getloadavg()[0])
        running = [side for side in running if side.take_turn()]
    return {side.name: side.finish() for side in sides}, loads


def report(ref: dict, ours: dict, loads: list[float]) -> str:
    def row(name: str, key: str, fmt: str) -> str:
        cells = [format(r[key], fmt) if r.get(key) is not None else "-" for r in (ref, ours)]
        return f"| {name} | {cells[0]} | {cells[1]} |"

    mean_ratio = ref["ms_per_iter_mean"] / ours["ms_per_iter_mean"]
    median_ratio = ref["ms_per_iter_median"] / ours["ms_per_iter_median"]
    lines = [
        "| | nanoGPT | alltokens |",
        "|---|---|---|",
        row("ms/iteration (median)", "ms_per_iter_median", ".1f"),
        row("ms/iteration (mean)", "ms_per_iter_mean", ".1f"),
        row("validation loss after training (whole val text)", "val_loss", ".4f"),
        row("validation loss, our trainer's own 20 batches", "trainer_val_loss", ".4f"),
        row("peak RSS (MiB)", "peak_rss_mib", ".0f"),
        row("training time incl. evaluations and checkpoints (s)", "train_s", ".1f"),
        row("first iteration (s)", "first_iter_s", ".2f"),
        row("dtype", "dtype", ""),
        row("vocabulary", "vocab_size", "d"),
        "",
        f"speed-up (nanoGPT ms / our ms): {median_ratio:.2f}x by medians, {mean_ratio:.2f}x by means",
        f"validation loss, ours minus nanoGPT: {ours['val_loss'] - ref['val_loss']:+.4f}",
        f"peak RSS, ours / nanoGPT: {ours['peak_rss_mib'] / ref['peak_rss_mib']:.2f}",
        f"machine load (1-min average) over the run: min {min(loads):.1f}, mean "
        f"{statistics.fmean(loads):.1f}, max {max(loads):.1f} on {os.cpu_count()} CPUs",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nanogpt", type=Path, required=True, help="a nanoGPT checkout (holds model.py)")
    p.add_argument("--data", type=Path, default=Path("../shared/data/tinyshakespeare.txt"))
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337, help="nanoGPT's train.py seed, used by both sides")
    p.add_argument("--turn", type=int, default=50, help="iterations a side runs before the other's turn")
    p.add_argument("--bf16", action="store_true", help="our side trains under bfloat16 autocast")
    p.add_argument("--compile", action="store_true", help="our side torch.compiles the model")
    p.add_argument("--only", choices=SIDES, help="run one side (its numbers as JSON, no ratio)")
    p.add_argument("--json", type=Path, help="also write both sides' numbers here")
    p.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)  # the driver starts these
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--go-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--done-fd", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    if not (args.nanogpt / "model.py").is_file():
        raise SystemExit(
            f"--nanogpt {args.nanogpt} has no model.py; git clone https://github.com/karpathy/nanoGPT"
        )
    if not args.data.is_file():
        raise SystemExit(f"--data {args.data} not found")
    if args.iters <= WARMUP_ITERS + 1:
        raise SystemExit(f"--iters must exceed {WARMUP_ITERS + 1} (the first {WARMUP_ITERS} are warm-up)")
    with tempfile.TemporaryDirectory() as tmp:
        results, loads = run_sides([args.only] if args.only else list(SIDES), args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps({**results, "load": loads}, indent=2) + "\n")
    if args.only:
        print(json.dumps(results[args.only], indent=2))
    else:
        print(report(results["nanogpt"], results["ours"], loads))


if __name__ == "__main__":
    main()
