"""`train_clip` and `alltokens train clip`: presets, a loadable run directory, exact resume, refusals."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

import alltokens
from alltokens.cli import main
from alltokens.io.checkpoint import CheckpointError, load_weights
from alltokens.models.clip import CLIP
from alltokens.nn.config import ConfigError
from alltokens.pipelines.clip import CLIPModel
from alltokens.train import TrainingInterrupted
from alltokens.train.objectives import contrastive
from alltokens.train.recipes import clip as recipe
from alltokens.train.recipes.clip import (
    captions_tokenizer,
    load_preset,
    preset_names,
    resolve_recipe,
    train_clip,
)


def write_clip_preset(path: Path, **train) -> Path:
    """A CLIP that trains a step in milliseconds: 16x16 images, two 16-wide towers, a small BPE."""
    preset = json.loads(
        Path(recipe.__file__).parent.parent.parent.joinpath("configs", "clip-tiny.json").read_text()
    )
    preset["tokenizer_scenes"] = 30
    preset["model"]["projection_dim"] = 8
    preset["model"]["vision"].update(
        image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    )
    preset["model"]["text"].update(hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    preset["train"].update(
        steps=6, batch_size=4, warmup_steps=2, eval_every=3, eval_steps=1, log_every=3, save_every=3, **train
    )
    path.write_text(json.dumps(preset))
    return path


@pytest.fixture
def preset(tmp_path):
    return write_clip_preset(tmp_path / "clip.json")


def test_packaged_presets_build_models():
    assert "tiny" in preset_names()
    tok = captions_tokenizer(load_preset("tiny").vocab_size, 50)
    for name in preset_names():
        r = resolve_recipe(name, tok)
        assert r.description and r.source
        assert r.model.text.vocab_size == tok.vocab_size and r.model.text.pad_token_id == tok.pad_id
        CLIP(r.model)


def test_the_captions_tokenizer_is_deterministic_and_covers_the_worlds():
    a, b = captions_tokenizer(512, 50), captions_tokenizer(512, 50)
    assert a.hf.to_str() == b.hf.to_str()
    # whole words of the shapes and digits worlds are single tokens
    assert len(a.encode("a large cyan triangle at the top left")) == 8
    assert len(a.encode("the digit seven")) == 3
    assert captions_tokenizer(0, 50).vocab_size == 256 + len(alltokens.tokenizers.SPECIAL_TOKENS)


def test_overrides_scale_min_lr():
    tok = captions_tokenizer(0, 1)
    base = load_preset("tiny").train
    r = resolve_recipe("tiny", tok, steps=7, batch_size=3, lr=base.lr / 2, seed=4).train
    assert (r.steps, r.batch_size, r.seed) == (7, 3, 4) and r.min_lr == pytest.approx(base.min_lr / 2)


def test_run_directory_is_a_loadable_clip(tmp_path, preset):
    out = train_clip("shapes", tmp_path / "run", preset=preset)
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "train.json",
        "metrics.jsonl",
        "loss.png",
    } <= names
    assert json.loads((out / "config.json").read_text())["kind"] == "clip"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "accuracy", "scale", "val_loss"} <= set(lines[-1])
    m = alltokens.load(out)
    assert isinstance(m, CLIPModel)
    assert m.embed_text(["a red circle"]).shape == (1, 8)


def interrupting(at_call: int):
    """The contrastive objective, sending this process SIGINT (Ctrl-C) during call `at_call`."""
    calls = {"n": 0}

    def objective(model, batch):
        calls["n"] += 1
        if calls["n"] == at_call:
            os.kill(os.getpid(), signal.SIGINT)
        return contrastive(model, batch)

    return objective


def test_resume_after_a_stop_is_bit_identical(tmp_path, preset, monkeypatch):
    reference = train_clip("digits", tmp_path / "ref", preset=preset)
    monkeypatch.setattr(recipe, "contrastive", interrupting(at_call=3))
    with pytest.raises(TrainingInterrupted, match="step 3 of 6"):
        train_clip("digits", tmp_path / "run", preset=preset)
    monkeypatch.setattr(recipe, "contrastive", contrastive)
    out = train_clip("digits", tmp_path / "run", preset=preset, resume=True)
    final, expected = load_weights(out), load_weights(reference)
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[k], expected[k]) for k in final)


def test_refusals(tmp_path, preset):
    with pytest.raises(ValueError, match="unknown image-text data 'pictures'"):
        train_clip("pictures", tmp_path / "a", preset=preset)
    assert not (tmp_path / "a").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        train_clip("shapes", busy, preset=preset)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_clip("shapes", tmp_path / "empty", preset=preset, resume=True)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        train_clip("shapes", tmp_path / "b", preset="huge")


def test_resume_with_other_data_names_the_field(tmp_path, preset):
    out = train_clip("shapes", tmp_path / "run", preset=preset, steps=3)
    with pytest.raises(ConfigError, match=r"data: saved 'shapes', requested 'digits'"):
        train_clip("digits", out, preset=preset, steps=3, resume=True)


def test_cli_trains_and_reports_errors_in_one_line(tmp_path, preset, capsys):
    out = tmp_path / "run"
    args = ["train", "clip", "--data", "shapes", "--out", str(out), "--preset", str(preset)]
    assert main([*args, "--steps", "2", "--batch-size", "3", "--lr", "0.01"]) == 0
    assert f"model written to {out}" in capsys.readouterr().out
    saved = json.loads((out / "train.json").read_text())["recipe"]["train"]
    assert (saved["steps"], saved["batch_size"], saved["lr"]) == (2, 3, 0.01)
    assert (
        main(["train", "clip", "--data", "nowhere", "--out", str(tmp_path / "x"), "--preset", str(preset)])
        == 2
    )
    assert "unknown image-text data 'nowhere'" in capsys.readouterr().err


DIGITS_STEPS = 300  # 96.7% after 400 steps (28 s on one busy core)


def text_to_image_recall(m: CLIPModel, scenes: list, images: list) -> float:
    """Recall@1 of each scene's canonical caption among all `images`; a retrieved image whose scene has
    the same canonical description counts as correct (identical descriptions cannot be told apart)."""
    from alltokens.data.shapes import caption

    texts = [caption(s) for s in scenes]
    best = (m.embed_text(texts) @ m.embed_image(images).T).argmax(dim=1)  # (N,)
    return sum(texts[j] == texts[i] for i, j in enumerate(best.tolist())) / len(scenes)


@pytest.mark.slow
def test_shapes_clip_retrieves_held_out_combinations(shapes_clip):
    """100 held-out-combination scenes (each has a colour x shape pair never seen in training) as
    candidates, each scene's caption as the query, on the varied renderer and on plain PIL drawings
    (a renderer the model never saw): the issue's floors, recall@1 >= 90% and >= 80%.

    The packaged 'tiny' preset reached 100% and 94-96% in four seeds (0 to 3) (`train/recipes/clip.py`);
    with max pooling alone it was 65% and 58%, the right objects in the wrong cells.
    """
    import random

    from alltokens.data.shapes import random_scene, render, render_plain

    m = alltokens.load(shapes_clip)
    size = m.cfg.vision.image_size
    rng = random.Random(2024)
    scenes = [random_scene(rng, "heldout") for _ in range(100)]
    varied = text_to_image_recall(
        m, scenes, [render(s, size, random.Random(i)) for i, s in enumerate(scenes)]
    )
    plain = text_to_image_recall(m, scenes, [render_plain(s, size) for s in scenes])
    assert varied >= 0.9 and plain >= 0.8, (varied, plain)


@pytest.mark.slow
def test_digits_clip_classifies_the_test_split_zero_shot(tmp_path):
    """Trained on the digits' train split; the test split's scans by their canonical label texts."""
    from alltokens.data.digits import digit_labels, load_digits_split

    out = train_clip("digits", tmp_path / "digits", preset="tiny", steps=DIGITS_STEPS)
    m = alltokens.load(out)
    test = load_digits_split("test", m.cfg.vision.image_size)
    probs = m.classify([image for image, _ in test], digit_labels())  # (N, 10)
    accuracy = (probs.argmax(dim=1) == torch.tensor([label for _, label in test])).float().mean().item()
    assert accuracy >= 0.9, accuracy


@pytest.mark.slow(minutes=4)
def test_outline_tower_tells_shape_on_held_out_pairs(tmp_path):
    """The 'tiny-outline' preset's reason to exist: its patch tokens say an object's shape also for the
    colour x shape pairs it never saw. A linear probe fitted on training-pair objects, scored on
    held-out-pair objects (`data.shapes.probe`): 74-75% after 900 steps (seed 0), where the 'tiny' preset's
    tower, reading shape through colour, scores 6%; the outline tower after 5 steps, near its init,
    already 60% (its inputs hold the outline), so the floor asks for what training adds."""
    from alltokens.data.shapes.probe import probe_tower

    torch.set_num_threads(1)
    out = train_clip("shapes", tmp_path / "outline", preset="tiny-outline", steps=900)
    m = alltokens.load(out)
    assert m.cfg.vision.patch_features == "shape_colour"
    shape = {s.attribute: s for s in probe_tower(m.model.vision, -2, 800, 300)}["shape"]
    assert shape.held_out >= 0.68, shape
