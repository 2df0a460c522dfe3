"""The generic trainer: accumulation, validation, logs, checkpoints, interruption and resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from alltokens.data.text import WindowBatches, tokenize_files
from alltokens.io.checkpoint import CheckpointError, load_weights
from alltokens.tokenizers import load_tokenizer
from alltokens.train import state as state_module
from alltokens.train.objectives import next_token
from alltokens.train.state import OLD_DIR, STATE_DIR, TMP_PREFIX, find_checkpoint
from alltokens.train.trainer import Trainer, TrainingInterrupted

from .tiny import FixedBatches, tiny_lm, tiny_train_config


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_trainer(run_dir: Path, data=None, val=None, model=None, **cfg) -> Trainer:
    cfg = tiny_train_config(**cfg)
    data = FixedBatches(cfg.steps * cfg.grad_accum) if data is None else data
    return Trainer(model or tiny_lm(), next_token, data, val, cfg, run_dir)


def test_grad_accumulation_matches_one_big_batch(tmp_path):
    big = FixedBatches(3, batch_size=8)
    halves = [{"ids": ids} for b in big.batches for ids in b["ids"].split(4)]
    one = make_trainer(tmp_path / "a", big, steps=3, batch_size=8, grad_accum=1, eval_every=0)
    two = make_trainer(tmp_path / "b", halves, steps=3, batch_size=4, grad_accum=2, eval_every=0)
    one.fit()
    two.fit()
    w1, w2 = weights(one.model), weights(two.model)
    start = weights(tiny_lm())
    assert any(not torch.equal(w1[k], start[k]) for k in w1)  # it did train
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=1e-4)


def test_validation_loss_drops_well_below_chance(tmp_path, text_file):
    tok = load_tokenizer("bytes")
    tokens = tokenize_files([text_file], tok)
    train, val = tokens[:-800], tokens[-800:]
    model = tiny_lm(vocab_size=tok.vocab_size)
    cfg = dict(steps=150, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=10, eval_every=50, eval_steps=4)
    trainer = make_trainer(
        tmp_path,
        WindowBatches(train, 8, 32, seed=0),
        WindowBatches(val, 8, 32, seed=1),
        model=model,
        **cfg,
    )
    last = trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(vals) == 3
    chance = torch.log(torch.tensor(float(tok.vocab_size))).item()  # 5.6 nats
    assert vals[-1] < vals[0] < chance - 2 and vals[-1] < 0.3, vals  # the repeated sentence is learnt
    assert last["val_loss"] == vals[-1]


def test_metrics_and_loss_curve_are_written(tmp_path):
    trainer = make_trainer(tmp_path, val=FixedBatches(2, seed=1), steps=12, log_every=4, eval_every=6)
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 6, 8, 12]
    for r in records:
        assert {"step", "loss", "lr", "tokens_per_s", "elapsed", "grad_norm"} <= set(r)
        assert r["tokens_per_s"] > 0
    assert [("val_loss" in r) for r in records] == [False, True, False, True]
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(load_weights(tmp_path)) == set(load_weights(tmp_path / STATE_DIR))


def test_progress_bar_only_when_asked(tmp_path, capsys):
    make_trainer(tmp_path / "quiet", steps=4, log_every=2).fit()
    assert capsys.readouterr().err == ""
    trainer = make_trainer(tmp_path / "loud", steps=4, log_every=2)
    trainer.progress = True
    trainer.fit()
    err = capsys.readouterr().err
    assert "step 4/4" in err and "loss" in err and "tok/s" in err and "eta" in err


def test_bf16_autocast_trains(tmp_path):
    trainer = make_trainer(tmp_path, steps=4, bf16=True, log_every=2)
    last = trainer.fit()
    assert torch.isfinite(torch.tensor(last["loss"]))
    assert trainer.model.embed.tokens.weight.dtype == torch.float32  # master weights stay fp32


def test_trainable_prefixes_freeze_everything_else(tmp_path):
    model = tiny_lm()
    before = weights(model)
    trainer = Trainer(
        model,
        next_token,
        FixedBatches(3),
        None,
        tiny_train_config(steps=3),
        tmp_path,
        trainable=["core.blocks.1."],
    )
    trainer.fit()
    after = weights(model)
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("core.blocks.1.") for k in changed)


def test_trainable_prefix_that_matches_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="projector"):
        Trainer(
            tiny_lm(),
            next_token,
            FixedBatches(1),
            None,
            tiny_train_config(),
            tmp_path,
            trainable=["projector."],
        )


def test_empty_validation_data_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="validation data yielded no batches"):
        make_trainer(tmp_path, val=[], steps=2, eval_every=1).fit()


def test_training_data_that_runs_out_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="ran out after 3 batches; 5 steps x grad_accum 1 need 5"):
        make_trainer(tmp_path, FixedBatches(3), steps=5).fit()


def test_new_run_refuses_a_directory_with_a_checkpoint(tmp_path):
    make_trainer(tmp_path, steps=2).fit()
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        make_trainer(tmp_path, steps=2).fit()


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        make_trainer(tmp_path).fit(resume=True)


def interrupting(at_step: int):
    """An objective that sends this process SIGINT (Ctrl-C) while computing step `at_step`."""
    calls = {"n": 0}

    def objective(model, batch):
        calls["n"] += 1
        if calls["n"] == at_step:
            os.kill(os.getpid(), signal.SIGINT)
        return next_token(model, batch)

    return objective


def test_ctrl_c_saves_then_resume_is_bit_identical(tmp_path):
    reference = make_trainer(tmp_path / "ref", steps=12, save_every=100)
    reference.fit()

    run = tmp_path / "run"
    trainer = make_trainer(run, steps=12, save_every=100)
    trainer.objective = interrupting(at_step=5)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a backgrounded shell job
    with pytest.raises(TrainingInterrupted, match="step 5 of 12"):
        trainer.fit()
    assert json.loads((run / STATE_DIR / "state.json").read_text())["step"] == 5
    assert signal.getsignal(signal.SIGINT) is before  # handler restored

    resumed = make_trainer(run, steps=12, save_every=100, model=tiny_lm(seed=123))  # weights come from disk
    resumed.fit(resume=True)
    final, expected = load_weights(run), load_weights(tmp_path / "ref")
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[k], expected[k]) for k in final)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # no step logged twice


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, steps=10, save_every=5)
    real_save_file = state_module.save_file

    def crash_on_second_checkpoint(tensors, path, *args, **kwargs):
        if f"{TMP_PREFIX}10" in str(path):
            Path(path).write_bytes(b"half a file")
            raise OSError("disk full (simulated)")
        return real_save_file(tensors, path, *args, **kwargs)

    monkeypatch.setattr(state_module, "save_file", crash_on_second_checkpoint)
    with pytest.raises(OSError, match="simulated"):
        trainer.fit()
    monkeypatch.undo()

    assert find_checkpoint(tmp_path) == tmp_path / STATE_DIR
    assert json.loads((tmp_path / STATE_DIR / "state.json").read_text())["step"] == 5
    assert list(tmp_path.glob(TMP_PREFIX + "*"))  # the torn attempt is still there...
    resumed = make_trainer(tmp_path, steps=10, save_every=5)
    resumed.fit(resume=True)  # ...and the old checkpoint loads
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))
    assert json.loads((tmp_path / STATE_DIR / "state.json").read_text())["step"] == 10


def test_crash_between_the_two_renames_falls_back_to_the_old_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, steps=10, save_every=5)
    real_rename = Path.rename

    def crash_on_promote(self, target):
        if Path(target).name == STATE_DIR and self.name.startswith(TMP_PREFIX):
            raise OSError("power cut (simulated)")
        return real_rename(self, target)

    trainer.fit()  # checkpoints at steps 5 and 10
    with monkeypatch.context() as m:
        m.setattr(Path, "rename", crash_on_promote)
        with pytest.raises(OSError, match="power cut"):
            trainer.save()
    assert not (tmp_path / STATE_DIR).exists() and (tmp_path / OLD_DIR).exists()
    assert find_checkpoint(tmp_path) == tmp_path / OLD_DIR
    resumed = make_trainer(tmp_path, steps=10, save_every=5)
    resumed.load()
    assert resumed.step == 10


def test_resume_with_a_different_number_of_processes_is_an_error(tmp_path):
    make_trainer(tmp_path, steps=2).fit()
    path = tmp_path / STATE_DIR / "state.json"
    state = json.loads(path.read_text())
    state["rng"] = state["rng"] * 2
    path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="2 process"):
        make_trainer(tmp_path, steps=4).fit(resume=True)


def test_resume_with_a_corrupt_optimizer_file_is_an_error(tmp_path):
    make_trainer(tmp_path, steps=2).fit()
    (tmp_path / STATE_DIR / "optimizer.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        make_trainer(tmp_path, steps=4).fit(resume=True)


def test_resume_into_a_different_model_is_an_error(tmp_path):
    make_trainer(tmp_path, steps=2).fit()
    with pytest.raises(CheckpointError, match="does not match"):
        make_trainer(tmp_path, steps=4, model=tiny_lm(hidden_size=48)).fit(resume=True)
