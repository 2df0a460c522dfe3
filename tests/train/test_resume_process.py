"""Exact resume after the hardest stop: SIGKILL of a training process, then `train lm --resume`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from alltokens.io.checkpoint import load_weights
from alltokens.train.state import find_checkpoint, read_json

from .tiny import write_preset

# The killed run: the real recipe, with each step slowed down so that the test can stop it mid-run.
SLOW_RUN = """
import sys, time
import alltokens.train.recipes.lm as recipe
from alltokens.train.objectives import next_token

def slow(model, batch):
    time.sleep(0.04)
    return next_token(model, batch)

recipe.next_token = slow
recipe.train_lm([sys.argv[1]], "bytes", sys.argv[2], preset=sys.argv[3], seed=0)
"""


def env() -> dict[str, str]:
    # the same thread count in every run: float sums are only reproducible with the same split
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "alltokens.cli", "train", "lm", *args]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)


def checkpoint_step(run: Path) -> int:
    path = find_checkpoint(run)
    return read_json(path / "state.json")["step"] if path else 0


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path, text_file):
    preset = write_preset(tmp_path / "preset.json", steps=40, save_every=5, eval_every=10, log_every=5)
    common = ["--data", str(text_file), "--tokenizer", "bytes", "--preset", str(preset)]

    reference = cli(*common, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr

    run = tmp_path / "run"
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(text_file), str(run), str(preset)], env=env())
    try:
        deadline = time.monotonic() + 120
        while checkpoint_step(run) < 10:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = checkpoint_step(run)
    assert 10 <= killed_at < 40

    resumed = cli(*common, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    final, expected = load_weights(run), load_weights(tmp_path / "ref")
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[k], expected[k]) for k in final)
    assert read_json(run / "trainer_state" / "state.json")["step"] == 40
