"""`train_lm` and `alltokens train lm`: presets, the run directory, and every refusal."""

from __future__ import annotations

import json

import pytest
import torch

import alltokens
from alltokens.cli import main
from alltokens.io.checkpoint import CheckpointError, load_weights
from alltokens.models.lm import LM
from alltokens.nn.config import ConfigError
from alltokens.tokenizers import load_tokenizer, train_bpe
from alltokens.train.recipes.lm import load_preset, preset_names, resolve_recipe, train_lm

from .tiny import write_preset


@pytest.fixture
def preset(tmp_path):
    return write_preset(tmp_path / "preset.json", steps=10)


def test_packaged_presets_build_models():
    assert {"tiny", "small", "shakespeare-baby"} <= set(preset_names())
    tok = load_tokenizer("bytes")
    for name in preset_names():
        recipe = resolve_recipe(name, tok)
        assert recipe.source and recipe.description
        assert recipe.model.vocab_size == tok.vocab_size and recipe.model.eos_token_id == tok.eos_id
        assert recipe.model.max_position_embeddings == recipe.block_size
        LM(recipe.model)


def test_baby_preset_is_nanogpts_cpu_config():
    recipe = load_preset("shakespeare-baby")
    m, t = recipe.model, recipe.train
    assert (m.num_hidden_layers, m.num_attention_heads, m.hidden_size) == (4, 4, 128)
    assert (recipe.block_size, t.batch_size, t.steps) == (64, 12, 2000)
    assert (m.norm, m.mlp, m.position_embedding, m.norm_bias, m.hidden_dropout) == (
        "layernorm",
        "gelu",
        "learned",
        False,
        0.0,
    )


def test_overrides_and_lr_scales_min_lr():
    tok = load_tokenizer("bytes")
    base = load_preset("tiny")
    recipe = resolve_recipe("tiny", tok, steps=7, batch_size=3, block_size=32, lr=base.train.lr / 2, seed=5)
    t = recipe.train
    assert (t.steps, t.batch_size, recipe.block_size, t.seed) == (7, 3, 32, 5)
    assert t.min_lr == pytest.approx(base.train.min_lr / 2)
    assert not t.bf16 and resolve_recipe("tiny", tok, bf16=True).train.bf16


def test_unknown_preset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'huge'.*tiny"):
        load_preset("huge")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_preset(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"hidden_sise": 3}}')
    with pytest.raises(ConfigError, match="hidden_sise"):
        load_preset(bad)


def test_run_directory_is_a_loadable_model(tmp_path, text_file, preset):
    out = train_lm([text_file], "bytes", tmp_path / "run", preset=preset)
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "train.json",
        "metrics.jsonl",
        "loss.png",
    } <= names
    assert "trainer_state" in names
    assert json.loads((out / "config.json").read_text())["kind"] == "lm"
    lm = alltokens.load(out)
    assert isinstance(lm.generate("the quick", max_new_tokens=4, temperature=0.0), str)


def test_bpe_tokenizer_directory_works(tmp_path, text_file, preset):
    tok = train_bpe([text_file], vocab_size=300)
    tok.save(tmp_path / "tok")
    out = train_lm([text_file], tmp_path / "tok", tmp_path / "run", preset=preset, block_size=16)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == tok.vocab_size


def test_new_run_refuses_a_non_empty_directory(tmp_path, text_file, preset):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty.*--resume"):
        train_lm([text_file], "bytes", out, preset=preset)
    assert (out / "notes.txt").read_text() == "mine"


def test_out_that_is_a_file_is_an_error(tmp_path, text_file, preset):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        train_lm([text_file], "bytes", tmp_path / "file", preset=preset)


def test_resume_with_no_checkpoint_is_an_error(tmp_path, text_file, preset):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_lm([text_file], "bytes", tmp_path / "empty", preset=preset, resume=True)


def test_resume_of_a_different_configuration_names_the_fields(tmp_path, text_file, preset):
    out = train_lm([text_file], "bytes", tmp_path / "run", preset=preset)
    with pytest.raises(ConfigError, match=r"recipe\.block_size: saved 32, requested 16") as e:
        train_lm([text_file], "bytes", out, preset=preset, block_size=16, resume=True)
    assert "recipe.model.max_position_embeddings" in str(e.value)
    with pytest.raises(ConfigError, match=r"recipe\.train\.steps: saved 10, requested 20"):
        train_lm([text_file], "bytes", out, preset=preset, steps=20, resume=True)
    other = write_preset(tmp_path / "wider.json", steps=10)
    cfg = json.loads(other.read_text())
    cfg["model"]["hidden_size"] = 64
    other.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"recipe\.model\.hidden_size: saved 32, requested 64"):
        train_lm([text_file], "bytes", out, preset=other, resume=True)
    bpe = train_bpe([text_file], vocab_size=300)
    bpe.save(tmp_path / "tok")
    with pytest.raises(ConfigError, match="tokenizer_sha256"):
        train_lm([text_file], tmp_path / "tok", out, preset=preset, resume=True)
    changed = tmp_path / "text.txt"
    changed.write_text(text_file.read_text() + "more")
    with pytest.raises(ConfigError, match=r"data_sha256"):
        train_lm([changed], "bytes", out, preset=preset, resume=True)


def test_resume_accepts_the_same_files_spelled_differently(tmp_path, text_file, preset, monkeypatch):
    out = train_lm([text_file], "bytes", tmp_path / "run", preset=preset, steps=4)
    monkeypatch.chdir(tmp_path)
    copy = write_preset(tmp_path / "same-preset.json", steps=10)
    train_lm([text_file.name], "bytes", out, preset=copy, steps=4, resume=True)


def test_resume_of_a_finished_run_changes_nothing(tmp_path, text_file, preset):
    out = train_lm([text_file], "bytes", tmp_path / "run", preset=preset)
    before = (out / "model.safetensors").read_bytes()
    train_lm([text_file], "bytes", out, preset=preset, resume=True)
    assert (out / "model.safetensors").read_bytes() == before


def test_too_little_data_is_an_error(tmp_path, preset):
    short = tmp_path / "short.txt"
    short.write_text("tiny text " * 5)
    with pytest.raises(ValueError, match="too few"):
        train_lm([short], "bytes", tmp_path / "run", preset=preset)


def test_cli_trains_and_reports_errors_in_one_line(tmp_path, text_file, preset, capsys):
    out = tmp_path / "run"
    args = ["train", "lm", "--data", str(text_file), "--tokenizer", "bytes", "--out", str(out)]
    assert main([*args, "--preset", str(preset), "--steps", "6", "--batch-size", "2", "--lr", "0.01"]) == 0
    captured = capsys.readouterr()
    assert f"model written to {out}" in captured.out
    assert "step 6/6" in captured.err  # the progress bar
    recipe = json.loads((out / "train.json").read_text())["recipe"]
    assert (recipe["train"]["steps"], recipe["train"]["batch_size"], recipe["train"]["lr"]) == (6, 2, 0.01)
    assert main([*args, "--preset", str(preset)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_data_pydocs_cli(tmp_path, capsys, monkeypatch):
    import alltokens.data.pydocs as pydocs

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "m.py").write_text('"""Docs of m."""\n')
    monkeypatch.setattr(pydocs, "stdlib_dir", lambda: lib)
    assert main(["data", "pydocs", "--out", str(tmp_path / "c.txt")]) == 0
    assert (tmp_path / "c.txt").read_text() == "Docs of m.\n"
    assert "MB of standard-library docstrings" in capsys.readouterr().out


def test_seeded_runs_are_reproducible(tmp_path, text_file, preset):
    a = train_lm([text_file], "bytes", tmp_path / "a", preset=preset, seed=1)
    b = train_lm([text_file], "bytes", tmp_path / "b", preset=preset, seed=1)
    c = train_lm([text_file], "bytes", tmp_path / "c", preset=preset, seed=2)
    wa, wb, wc = (load_weights(d) for d in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
