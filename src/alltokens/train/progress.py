"""A one-line progress bar on stderr: step, loss, tokens/s and ETA. No dependency.

On a terminal the line is redrawn in place; otherwise (a log file, CI) each update is its own line.
The trainer creates one only when asked (`progress=True`): the library does not print by default.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None, width: int = 20):
        self.total, self.start, self.width = total, start, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    def render(self, step: int, fields: dict[str, str]) -> str:
        frac = step / self.total
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        rate = (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)
        eta = format_duration((self.total - step) / rate) if rate > 0 else "?"
        extras = " ".join(f"{k} {v}" for k, v in fields.items())
        return f"step {step}/{self.total} [{bar}] {extras} eta {eta}"

    def update(self, step: int, **fields: str) -> None:
        line = self.render(step, fields)
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
