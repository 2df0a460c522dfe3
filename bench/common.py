"""What every benchmark script shares: this process's memory from /proc, the machine line, summaries.

Memory comes from Linux's /proc/self/status: VmRSS (resident now) and VmHWM (the peak), which
`reset_peak` sets back to the current RSS so that a phase's own peak can be read. `ru_maxrss` would not
do: a child process inherits its parent's. Off Linux these give None.
"""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

import torch


def rss_mb(field: str) -> float | None:
    """VmRSS / VmHWM of this process in MB, from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine(**versions: str) -> str:
    """CPU, cores, torch and its threads, the given library versions, Python, the load average."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libraries = "".join(f"{name} {version}, " for name, version in versions.items())
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{libraries}Python {platform.python_version()}; load average {load_average()}"
    )


def median_best(rates: list[float]) -> tuple[float, float]:
    """(median, best) of per-repeat rates: other processes only slow a run down, so on a shared machine
    the best is the closer estimate of what the code does on a quiet one."""
    return statistics.median(rates), max(rates)


def speed_cells(rates: dict[str, list[float]], sides: tuple[str, ...], digits: int) -> list[str]:
    """A results-table row's cells: "median / best" per side, then ours / the last side (the reference),
    of medians and of bests."""
    summary = {side: median_best(rates[side]) for side in sides}
    (m_ours, b_ours), (m_ref, b_ref) = summary["ours"], summary[sides[-1]]
    cells = [f"{m:.{digits}f} / {b:.{digits}f}" for m, b in summary.values()]
    return [*cells, f"{m_ours / m_ref:.2f}x / {b_ours / b_ref:.2f}x"]


def every_repeat(rates: dict[str, list[float]], digits: int) -> str:
    """Every repeat's rate per side, for the notes under a table."""
    return "; ".join(f"{side} " + ", ".join(f"{r:.{digits}f}" for r in runs) for side, runs in rates.items())


def print_memory_table(measure, batch_sizes: list[int], phase: str, key: str) -> None:
    """The peak-memory table: one fresh process per (batch, side), `measure(side, batch)` -> a dict with
    baseline_mb, loaded_mb, `key` (this phase's own peak, None where unreadable) and peak_mb."""
    print(
        f"\n| batch | side | after imports (MB) | after load (MB) | peak {phase} (MB) | peak incl. load (MB) |"
    )
    print("|---|---|---|---|---|---|")
    for batch in batch_sizes:
        for side in ("ours", "transformers"):
            m = measure(side, batch)
            during = "n/a" if m[key] is None else f"{m[key]:.0f}"
            print(
                f"| {batch} | {side} | {m['baseline_mb']:.0f} | {m['loaded_mb']:.0f} | {during} | {m['peak_mb']:.0f} |",
                flush=True,
            )
    print(
        "\neach row is a fresh process: python, torch, transformers and alltokens imported, then one model."
    )
