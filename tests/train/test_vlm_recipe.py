"""`train_vlm`: LLaVA's two stages on the generic trainer, the run directory, resume, refusals; and (slow)
the issue's quality floors on held-out-combination scenes: the 'tiny-long' recipe on a colour tower and a
shape tower (the `colour_tower` and `shape_tower` session fixtures)."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil

import pytest
import torch
from safetensors.torch import load_file

import alltokens
from alltokens.cli import main
from alltokens.data.shapes import exam_items, random_scene, render, render_plain, scene_stream, take_exam
from alltokens.data.vqa import ChatFormat, VQABatches
from alltokens.io.checkpoint import CheckpointError, save_weights, write_json
from alltokens.models.lm import LM, LMConfig
from alltokens.models.vit import ViT, ViTConfig
from alltokens.models.vlm import VLM, VLMConfig
from alltokens.nn.config import ConfigError
from alltokens.tokenizers import byte_tokenizer, load_tokenizer
from alltokens.train.recipes import common
from alltokens.train.recipes.vlm import image_next_token, load_preset, train_vlm

EXAM_SCENES = 100  # held-out scenes per exam: 568 questions, 63 captions (1-2 object scenes)

STAGE = {
    "batch_size": 4,
    "warmup_steps": 1,
    "eval_every": 2,
    "eval_steps": 1,
    "log_every": 1,
    "save_every": 2,
}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny random ViT directory (no tokenizer), an LM directory with the byte tokenizer, a tiny preset."""
    root = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    vit = ViT(
        ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2)
    )
    vit.init_weights()
    write_json(root / "vit" / "config.json", vit.cfg.to_dict())
    save_weights(root / "vit", vit.state_dict())
    outline = ViT(dataclasses.replace(vit.cfg, hidden_size=8, patch_features="shape_colour"))
    outline.init_weights()
    write_json(root / "outline-vit" / "config.json", outline.cfg.to_dict())
    save_weights(root / "outline-vit", outline.state_dict())
    tok = byte_tokenizer()
    lm = LM(
        LMConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, max_position_embeddings=256)
    )
    lm.init_weights()
    write_json(root / "lm" / "config.json", lm.cfg.to_dict())
    save_weights(root / "lm", lm.state_dict())
    tok.save(root / "lm")
    preset = {
        "lm": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2},
        "text_context": 320,
        "questions": 2,
        "vocab_size": 300,
        "tokenizer_scenes": 20,
        "stage1": {**STAGE, "steps": 2},
        "stage2": {**STAGE, "steps": 3},
    }
    (root / "tiny.json").write_text(json.dumps(preset))
    return root


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in a if k.startswith(prefix)]
    return bool(keys) and all(torch.equal(a[k], b[k]) for k in keys)


def test_two_stages_train_the_right_parts_into_a_loadable_run(parts, tmp_path):
    torch.set_num_threads(1)
    out = train_vlm(parts / "vit", parts / "lm", tmp_path / "run", preset=parts / "tiny.json")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "vlm" and cfg["feature_layer"] == -2
    assert (out / "tokenizer.json").exists() and (out / "train.json").exists()
    final, stage1 = weights(out), weights(out / "trainer_state")
    vit, lm = weights(parts / "vit"), weights(parts / "lm")
    assert same({f"vision.{k}": v for k, v in vit.items()}, final, "vision.")  # frozen throughout
    assert same({f"lm.{k}": v for k, v in lm.items()}, stage1, "lm.")  # stage 1: projector only
    assert not same(stage1, final, "lm.") and not same(stage1, final, "projector.")  # stage 2: both
    assert len((out / "metrics.jsonl").read_text().splitlines()) >= 2  # stage 1 logs at the top
    assert json.loads((out / "stage2" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    m = alltokens.load(out)
    image = render(random_scene(random.Random(0)), 16)
    assert isinstance(m.ask(image, "what colour is the circle?", max_new_tokens=4), str)


def test_a_second_tower_stays_frozen_beside_the_first_and_its_norms_train(parts, tmp_path):
    torch.set_num_threads(1)
    preset = tmp_path / "norm.json"
    tiny = json.loads((parts / "tiny.json").read_text())
    preset.write_text(json.dumps({**tiny, "feature_norm": True, "tower_fusion": "sum"}))
    out = train_vlm(
        parts / "vit", parts / "lm", tmp_path / "run", preset=preset, second_vision=parts / "outline-vit"
    )
    final, second = weights(out), weights(parts / "outline-vit")
    assert same({f"second_vision.{k}": v for k, v in second.items()}, final, "second_vision.")
    config = json.loads((out / "config.json").read_text())
    assert config["feature_norm"] and config["tower_fusion"] == "sum"
    stage1 = weights(out / "trainer_state")
    for i, width in enumerate((16, 8)):  # one norm per tower, trained from stage 1 on (part of the projector)
        norm = stage1[f"projector.norms.{i}.weight"]
        assert norm.shape == (width,) and not torch.equal(norm, torch.ones(width))
        assert stage1[f"projector.linear_1.{i}.weight"].shape[1] == width  # one first layer per tower
    assert json.loads((out / "train.json").read_text())["second_vision"] == str(parts / "outline-vit")
    m = alltokens.load(out)
    assert m.model.cfg.second_vision.patch_features == "shape_colour"
    assert isinstance(
        m.ask(render(random_scene(random.Random(0)), 16), "how many objects?", max_new_tokens=2), str
    )


def test_tiled_batches_splice_each_rows_tiles_into_its_own_placeholders():
    """`image_next_token` on a tiled batch: each row's tokens come from its image's tiles, in order,
    and an image's two rows share one pass of the tower (`image_index`)."""
    torch.manual_seed(0)
    chat = ChatFormat(byte_tokenizer())
    vision = ViTConfig(
        image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2
    )
    lm = LMConfig(
        vocab_size=chat.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, max_position_embeddings=256
    )
    model = VLM(VLMConfig(vision=vision, lm=lm, image_token_id=chat.image_id, max_tiles=2))
    model.init_weights()
    batch = VQABatches(chat, model.cfg, batch_size=3, seed=0, questions=2, canvas=(32, 16), pack=False).batch(
        0
    )
    assert batch["pixels"].shape == (3 * 3, 3, 16, 16)  # 1x2 tiles + the overview per image
    ids = batch["ids"][:, :-1]  # (6, T): two rows per image
    with torch.no_grad():
        together = model(ids, pixels=batch["pixels"], image_index=batch["image_index"])  # (6, T, V)
        for row in range(6):
            image = row // 2
            alone = model(ids[row : row + 1], pixels=batch["pixels"][3 * image : 3 * (image + 1)])
            torch.testing.assert_close(together[row], alone[0])
        loss, _ = image_next_token(model, batch)
    assert torch.isfinite(loss)


def test_a_tiled_run_on_large_scenes_trains_and_loads(parts, tmp_path):
    torch.set_num_threads(1)
    preset = {**json.loads((parts / "tiny.json").read_text()), "max_tiles": 4, "canvas": [32, 32]}
    (tmp_path / "tiled.json").write_text(json.dumps(preset))
    out = train_vlm(
        parts / "vit",
        parts / "lm",
        tmp_path / "run",
        preset=tmp_path / "tiled.json",
        stage1_steps=1,
        stage2_steps=1,
    )
    m = alltokens.load(out)
    assert m.cfg.max_tiles == 4 and json.loads((out / "train.json").read_text())["recipe"]["canvas"] == [
        32,
        32,
    ]
    image, _ = scene_stream(0, "train", 16, canvas=(32, 32))[0]
    assert m.layouts([image])[0].describe() == "2x2 tiles of 16px + overview: 5 x 4 = 20 image tokens"
    assert isinstance(m.ask(image, "how many objects are there?", max_new_tokens=4), str)
    (tmp_path / "small.json").write_text(json.dumps({**preset, "canvas": [8, 32]}))
    with pytest.raises(ValueError, match="a canvas must be 16 to .* a 16px scene, got 8x32"):
        train_vlm(parts / "vit", parts / "lm", tmp_path / "bad", preset=tmp_path / "small.json")
    assert not (tmp_path / "bad").exists()  # refused before the run directory is made


def test_new_lm_takes_the_vision_tokenizer_or_trains_the_shapes_bpe(parts, tmp_path):
    torch.set_num_threads(1)
    out = train_vlm(parts / "vit", "new", tmp_path / "bpe", preset=parts / "tiny.json")
    assert load_tokenizer(out).vocab_size == 300
    assert json.loads((out / "config.json").read_text())["lm"]["max_position_embeddings"] == 4 + 320
    vision = tmp_path / "vit-with-tokenizer"
    shutil.copytree(parts / "vit", vision)
    byte_tokenizer().save(vision)
    out = train_vlm(vision, "new", tmp_path / "bytes", preset=parts / "tiny.json")
    assert (out / "tokenizer.json").read_text() == (vision / "tokenizer.json").read_text()


def test_resume_loads_a_finished_stage_1_and_continues_stage_2_exactly(parts, tmp_path):
    torch.set_num_threads(1)
    full = train_vlm(parts / "vit", parts / "lm", tmp_path / "full", preset=parts / "tiny.json")
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "stage2")  # as if stopped right after stage 1
    stage1_log = (cut / "metrics.jsonl").read_text()
    train_vlm(parts / "vit", parts / "lm", cut, preset=parts / "tiny.json", resume=True)
    assert (cut / "metrics.jsonl").read_text() == stage1_log  # stage 1 was not trained again
    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_trains_and_refuses_a_used_directory(parts, tmp_path, capsys):
    torch.set_num_threads(1)
    args = [
        "train",
        "vlm",
        "--vision",
        str(parts / "vit"),
        "--lm",
        str(parts / "lm"),
        "--out",
        str(tmp_path / "run"),
    ]
    args += ["--preset", str(parts / "tiny.json"), "--stage1-steps", "1", "--stage2-steps", "1"]
    args += ["--second-vision", str(parts / "outline-vit")]
    assert main(args) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["second_vision"]["hidden_size"] == 8
    assert f"model written to {tmp_path / 'run'}" in capsys.readouterr().out
    assert main(args) == 2
    assert "is not empty" in capsys.readouterr().err


def test_stage_2_asks_with_the_presets_question_noise(parts, tmp_path, monkeypatch):
    from alltokens.train.recipes import vlm as recipe

    seen = []

    class Recording(VQABatches):
        def __init__(self, *args, **kwargs):
            seen.append((kwargs.get("task", "qa"), kwargs.get("question_noise", 0.0)))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(recipe, "VQABatches", Recording)
    noisy = tmp_path / "noisy.json"
    noisy.write_text(json.dumps({**json.loads((parts / "tiny.json").read_text()), "question_noise": 0.5}))
    torch.set_num_threads(1)
    train_vlm(parts / "vit", parts / "lm", tmp_path / "run", preset=noisy, stage1_steps=1, stage2_steps=1)
    assert seen == [("caption", 0.0)] * 2 + [("qa", 0.5)] * 2  # training and validation batches


def test_packaged_presets_load_with_their_description():
    names = common.preset_names("vlm")
    assert {"tiny", "tiny-long"} <= set(names)
    for name in names:
        recipe = load_preset(name)
        assert recipe.description and recipe.source, name


def test_bad_runs_are_refused_with_a_reason(parts, tmp_path):
    preset = parts / "tiny.json"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        train_vlm(parts / "vit", "new", tmp_path / "full", preset=preset)
    with pytest.raises(ValueError, match="--vision .* holds a 'lm' model"):
        train_vlm(parts / "lm", "new", tmp_path / "a", preset=preset)
    with pytest.raises(ValueError, match="--second-vision .* holds a 'lm' model"):
        train_vlm(parts / "vit", "new", tmp_path / "a", preset=preset, second_vision=parts / "lm")
    with pytest.raises(ValueError, match="--lm .* holds a 'vit' model"):
        train_vlm(parts / "vit", parts / "vit", tmp_path / "b", preset=preset)
    with pytest.raises(ValueError, match="unknown VLM data 'digits'"):
        train_vlm(parts / "vit", "new", tmp_path / "c", data="digits", preset=preset)
    noisy = tmp_path / "noisy.json"
    noisy.write_text(json.dumps({**json.loads(preset.read_text()), "colour_noise": 1.0}))
    with pytest.raises(ValueError, match="colour_noise needs every colour word to be one token"):
        train_vlm(parts / "vit", parts / "lm", tmp_path / "g", preset=noisy)  # the byte tokenizer
    assert not (tmp_path / "g").exists()
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**json.loads(preset.read_text()), "question_noise": 1.5}))
    with pytest.raises(ConfigError, match=r"question_noise must be in \[0, 1\], got 1.5"):
        train_vlm(parts / "vit", "new", tmp_path / "h", preset=wrong)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        train_vlm(parts / "vit", "new", tmp_path / "d", preset="huge")
    with pytest.raises(ConfigError, match="tower_fusion 'sum' needs a second_vision tower"):
        train_vlm(parts / "vit", "new", tmp_path / "i", preset="tiny-long")  # made for two towers
    assert not (tmp_path / "i").exists()
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_vlm(parts / "vit", parts / "lm", tmp_path / "e", preset=preset, resume=True)
    torch.set_num_threads(1)
    run = train_vlm(parts / "vit", parts / "lm", tmp_path / "f", preset=preset)
    with pytest.raises(ConfigError, match="stage2.steps: saved 3, requested 5"):
        train_vlm(parts / "vit", parts / "lm", run, preset=preset, stage2_steps=5, resume=True)


# ---- quality (`make test-quality`): the floors on held-out colour x shape combinations ------------
#
# The 'tiny-long' recipe on its two towers, as the README trains it, in two seeds: each seed's towers and
# VLM train on one core (the seed's xdist group), about 23 minutes with both seeds side by side, past the
# budget of `make test`; the towers' own quality is pinned there (tests/data/test_shapes_probe.py).

SEEDS = [pytest.param(seed, marks=pytest.mark.xdist_group(f"vlm-seed{seed}")) for seed in (0, 1)]


@pytest.fixture(scope="module")
def floors_vlm(towers, tmp_path_factory):
    """seed -> the 'tiny-long' VLM trained with that seed on that seed's towers, once per worker."""
    trained = {}

    def get(seed: int):
        if seed not in trained:
            torch.set_num_threads(1)
            colour, shape = towers(seed)
            out = tmp_path_factory.mktemp(f"vlm-seed{seed}") / "run"
            trained[seed] = alltokens.load(
                train_vlm(colour, "new", out, preset="tiny-long", second_vision=shape, seed=seed)
            )
        return trained[seed]

    return get


@pytest.mark.quality
@pytest.mark.slow(minutes=23)
@pytest.mark.parametrize("seed", SEEDS)
def test_answers_and_captions_on_held_out_combinations(floors_vlm, seed):
    vlm = floors_vlm(seed)
    score = take_exam(vlm, exam_items(EXAM_SCENES, vlm.cfg.vision.image_size))
    print(f"seed {seed}, held out: {score.summary()}")  # shown by `make test-quality` (-rP)
    assert score.exact_match >= 0.9, f"exact match < 0.9: {score.summary()}"
    assert score.captions >= 0.9, f"captions naming every object right < 0.9: {score.summary()}"


@pytest.mark.quality
@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_quality_holds_on_plainly_drawn_images(floors_vlm, seed):
    """The issue's floors less 10 points, on pictures drawn by other means (`render_plain`)."""
    vlm = floors_vlm(seed)
    plain = exam_items(
        EXAM_SCENES, vlm.cfg.vision.image_size, lambda scene, size, rng: render_plain(scene, size)
    )
    score = take_exam(vlm, plain)
    print(f"seed {seed}, plainly drawn: {score.summary()}")
    assert score.exact_match >= 0.8, f"exact match on render_plain < 0.8: {score.summary()}"
    assert score.captions >= 0.8, f"captions on render_plain < 0.8: {score.summary()}"
