"""The main job (`make demo`): a tour of what alltokens does, ending in an HTML report.

One section per capability, each a module of this package that trains what it shows on this machine
(CPU, no network) and adds its part to one `Report`: `text` (a tokenizer and a small LM on the standard
library's docstrings, samples, the real MiniLM encoder), `vision` (patch tokens, CLIP zero-shot, a
LLaVA-style model answering questions about held-out scenes). `quick=True` trains every section for
fewer steps so the whole job stays under two minutes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

MARKER = ".alltokens-demo"  # only a directory holding this marker is ever cleared by the demo


def _prepare(out: Path) -> None:
    """Start from a clean demo directory, refusing to clear anything the demo did not create."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise FileExistsError(f"{out} exists and was not made by the demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `alltokens demo`; cleared on the next run\n")


def run_demo(
    out: str | Path = "runs/demo",
    quick: bool = False,
    steps: int | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Path:
    """Run the tour and return the path of `report.html`; `log` receives one line per step.

    `steps` overrides every section's training steps (the tests use a handful).
    """
    from alltokens.demo import text, vision
    from alltokens.report import Report

    out = Path(out)
    _prepare(out)
    started = time.perf_counter()
    report = Report("alltokens demo: everything is tokens")
    report.text(
        "Models trained from scratch on this machine, and real checkpoints, all on the CPU with no network."
    )
    text.run(report, out, quick, steps, log)
    vision.run(report, out, quick, steps, log)
    report.text(
        f"Made by `alltokens demo{' --quick' if quick else ''}` in {time.perf_counter() - started:.0f} s.",
        muted=True,
    )
    path = report.write(out / "report.html")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return path
