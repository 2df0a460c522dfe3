"""The same recipe under `torchrun --nproc_per_node 2` (gloo on CPU): it trains, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .tiny import write_preset

# Run the CLI unchanged; on ranks other than 0 an audit hook records every write into the run directory.
LAUNCH = """
import os, sys

run_dir = os.path.abspath(sys.argv[1])
violations = sys.argv[2]
rank = int(os.environ["RANK"])

def inside(path):
    return isinstance(path, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(path)).startswith(run_dir)

def audit(event, args):
    writes = False
    if event == "open" and inside(args[0]):
        mode, flags = args[1], args[2]
        writes = (mode is not None and any(c in mode for c in "wax+")) or bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    elif event in ("os.rename", "os.remove", "os.mkdir", "os.link", "shutil.rmtree") and inside(args[0]):
        writes = True
    if writes:
        with open(violations, "a") as f:
            f.write(f"rank {rank}: {event} {args[0]!r}\\n")

if rank != 0:
    sys.addaudithook(audit)

from alltokens.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.slow
def test_two_processes_train_and_only_rank_0_writes(tmp_path, text_file):
    preset = write_preset(
        tmp_path / "preset.json", steps=30, save_every=10, eval_every=10, log_every=5, lr=1e-2
    )
    run = tmp_path / "run"
    violations = tmp_path / "violations.txt"
    script = tmp_path / "launch.py"
    script.write_text(LAUNCH)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(run), str(violations),
        "train", "lm", "--data", str(text_file), "--tokenizer", "bytes", "--out", str(run), "--preset", str(preset),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    assert not violations.exists(), violations.read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == [5, 10, 15, 20, 25, 30]  # one writer: no step logged twice
    assert records[-1]["loss"] < records[0]["loss"] - 1.0
    vals = [r["val_loss"] for r in records if "val_loss" in r]
    assert vals[-1] < vals[0]
    state = json.loads((run / "trainer_state" / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert result.stdout.count("model written to") == 2  # both ranks ran the command to the end
