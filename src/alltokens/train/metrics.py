"""The run's record: `metrics.jsonl` (one JSON object per logged step) and the `loss.png` curve.

On resume the log is cut back to the checkpoint's step, so steps replayed after a crash are not logged
twice and the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alltokens.io.checkpoint import atomic_write


class MetricsLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a crash mid-append
                continue
        return records

    def truncate_after(self, step: int) -> None:
        """Drop records logged after `step` (they are about to be recomputed)."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write(self.path, lambda p: p.write_text(text))


def plot_loss(records: list[dict[str, Any]], path: str | Path) -> None:
    """Training and validation loss against step, written as a PNG (matplotlib, Agg backend)."""
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the global backend alone

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if train:
        ax.plot(*zip(*train), label="train")
    if val:
        ax.plot(*zip(*val), marker="o", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if train or val:
        ax.legend()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
