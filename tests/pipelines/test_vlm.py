"""`VisionLanguageModel` from `alltokens.load`: ask, caption, generate with images, stream, its errors,
and AnyRes tiling under an image-token budget."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil

import pytest
import torch
from PIL import Image

import alltokens
from alltokens.cli import main
from alltokens.data.shapes import random_scene, render
from alltokens.data.vqa import CAPTION_PROMPT, ChatFormat, image_pixels
from alltokens.io.checkpoint import save_weights, write_json
from alltokens.models.lm import LMConfig
from alltokens.models.vit import ViTConfig
from alltokens.models.vlm import VLM, VLMConfig
from alltokens.pipelines.vlm import VisionLanguageModel
from alltokens.tokenizers import byte_tokenizer
from alltokens.tokenizers.image import ImageError
from alltokens.tokenizers.tiling import tile_image


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random tiny VLM with the byte tokenizer, saved as a run directory. Rows above ASCII (special tokens included) are
    zero, so it writes ASCII (logit 0 loses to the largest of 128 random logits) and never stops early."""
    tok = byte_tokenizer()
    vision = ViTConfig(
        image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2
    )
    lm = LMConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, max_position_embeddings=80)
    cfg = VLMConfig(vision=vision, lm=lm, image_token_id=tok.token_to_id("<|image|>"))
    torch.manual_seed(0)
    model = VLM(cfg)
    model.init_weights()
    with torch.no_grad():
        model.lm.embed.tokens.weight[128:] = 0
    directory = tmp_path_factory.mktemp("vlm")
    write_json(directory / "config.json", cfg.to_dict())
    save_weights(directory, model.state_dict())
    tok.save(directory)
    return directory


@pytest.fixture(scope="module")
def vlm(model_dir) -> VisionLanguageModel:
    return alltokens.load(model_dir)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return render(random_scene(random.Random(0)), 16)


def greedy_reply(m: VisionLanguageModel, messages, images, max_new: int) -> str:
    """Greedy decoding by re-running the whole sequence each step, stopping at <|end|>."""
    ids, _ = m.chat.encode(messages, [m.cfg.image_tokens] * len(images))
    with torch.no_grad():
        feats = m.model.image_tokens(image_pixels(images, m.cfg.vision)).flatten(0, 1)
        new = []
        for _ in range(max_new):
            nxt = int(m.model(torch.tensor([ids + new]), feats)[0, -1].argmax())
            if nxt == m.chat.end_id:
                break
            new.append(nxt)
    return m.tokenizer.decode(new, skip_special_tokens=True)


def test_load_gives_a_vision_language_model(vlm):
    assert isinstance(vlm, VisionLanguageModel)
    assert isinstance(vlm.chat, ChatFormat) and vlm.cfg.image_tokens == 4


def test_image_tokens_are_computed_once_per_image_with_their_counts(vlm, image):
    tokens, counts = vlm.image_tokens([image, image.rotate(90)])
    assert tokens.shape == (8, 32) and counts == [4, 4]
    torch.testing.assert_close(tokens[:4], vlm.image_tokens([image])[0])
    empty, none = vlm.image_tokens([])
    assert empty.shape == (0, 32) and none == []


def test_ask_and_caption_are_greedy_replies_to_the_chat_prompt(vlm, image):
    question = [{"role": "user", "content": "what colour is the circle?", "images": [image]}]
    answer = vlm.ask(image, "what colour is the circle?", max_new_tokens=12)
    assert answer and answer == greedy_reply(vlm, question, [image], 12)
    describe = [{"role": "user", "content": CAPTION_PROMPT, "images": [image]}]
    assert vlm.caption(image, max_new_tokens=12) == greedy_reply(vlm, describe, [image], 12)


def test_generate_takes_markers_or_messages_and_stream_joins_to_it(vlm, image):
    other = render(random_scene(random.Random(1)), 16)
    prompt = "compare <|image|> with <|image|>"
    reply = vlm.generate(prompt, [image, other], max_new_tokens=10)
    messages = [{"role": "user", "content": prompt, "images": [image, other]}]
    assert reply == greedy_reply(vlm, messages, [image, other], 10)
    assert "".join(vlm.stream(prompt, [image, other], max_new_tokens=10)) == reply
    turns = [
        {"role": "user", "content": "what is this?", "images": [image]},
        {"role": "assistant", "content": "a circle"},
        {"role": "user", "content": "and this?", "images": [other]},
    ]
    assert vlm.generate(turns, max_new_tokens=10) == greedy_reply(vlm, turns, [image, other], 10)
    sampled = vlm.generate(turns, max_new_tokens=10, temperature=1.0, seed=3)
    assert sampled == vlm.generate(turns, max_new_tokens=10, temperature=1.0, seed=3)


def test_any_image_mode_and_source_is_accepted(vlm, image, tmp_path):
    path = tmp_path / "gray.png"
    image.convert("L").save(path)
    assert isinstance(vlm.ask(path, "what?", max_new_tokens=3), str)
    assert isinstance(vlm.ask(image.convert("P"), "what?", max_new_tokens=3), str)


def test_errors_name_what_is_wrong(vlm, image, tmp_path):
    with pytest.raises(ValueError, match=r"the prompt has \d+ tokens, longer than the model's context of 80"):
        vlm.ask(image, "why? " * 40)
    with pytest.raises(ValueError, match=r"exceed the model's context of 80 tokens"):
        vlm.ask(image, "what?", max_new_tokens=200)
    with pytest.raises(ValueError, match="2 <\\|image\\|> marker.*1 image"):
        vlm.generate("<|image|> or <|image|>", [image])
    with pytest.raises(ValueError, match="each message's images"):
        vlm.generate([{"role": "user", "content": "hi"}], [image])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageError, match="broken.png"):
        vlm.ask(broken, "what colour?")
    with pytest.raises(FileNotFoundError):
        vlm.caption(tmp_path / "missing.png")


def test_cli_asks_and_captions(model_dir, image, tmp_path, capsys):
    path = tmp_path / "scene.png"
    image.save(path)
    assert main(["ask", "--model", str(model_dir), str(path), "what colour?", "--max-new-tokens", "5"]) == 0
    expected = alltokens.load(model_dir).ask(path, "what colour?", max_new_tokens=5)
    assert capsys.readouterr().out == expected + "\n"
    assert main(["caption", "--model", str(model_dir), str(path), "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.strip()
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["caption", "--model", str(model_dir), str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt" in capsys.readouterr().err


# ---- AnyRes tiling ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiled_dir(model_dir, tmp_path_factory):
    """The same weights as a run directory that tiles: up to 4 tiles of 16px (4 tokens each) + overview."""
    directory = tmp_path_factory.mktemp("tiled")
    shutil.copytree(model_dir, directory, dirs_exist_ok=True)
    cfg = json.loads((model_dir / "config.json").read_text())
    write_json(directory / "config.json", {**cfg, "max_tiles": 4})
    return directory


@pytest.fixture(scope="module")
def tiled(tiled_dir) -> VisionLanguageModel:
    return alltokens.load(tiled_dir)


@pytest.fixture(scope="module")
def large() -> Image.Image:
    """A 32x32 picture: 2x2 tiles of 16px, each its own colour."""
    image = Image.new("RGB", (32, 32))
    for (x, y), colour in zip([(0, 0), (16, 0), (0, 16), (16, 16)], ["red", "blue", "green", "yellow"]):
        image.paste(colour, (x, y, x + 16, y + 16))
    return image


def test_a_tiled_run_directory_round_trips_and_loads(tiled_dir, tiled, vlm):
    assert tiled.cfg.max_tiles == 4 and tiled.cfg == VLMConfig.from_dict(
        json.loads((tiled_dir / "config.json").read_text())
    )
    assert tiled.cfg == dataclasses.replace(vlm.cfg, max_tiles=4)


def test_a_tiled_image_is_its_tiles_tokens_overview_first(tiled, large):
    tokens, counts = tiled.image_tokens([large])
    (layout,) = tiled.layouts([large])
    assert (layout.rows, layout.cols, layout.overview) == (2, 2, True)
    assert counts == [5 * 4] and tokens.shape == (20, 32)
    by_hand = [large.resize((16, 16), Image.Resampling.BICUBIC)]  # the overview: the whole picture
    by_hand += [large.crop((x, y, x + 16, y + 16)) for y in (0, 16) for x in (0, 16)]  # row-major
    with torch.no_grad():
        expected = tiled.model.image_tokens(image_pixels(by_hand, tiled.cfg.vision))  # (5, 4, C)
    torch.testing.assert_close(tokens, expected.flatten(0, 1))
    two, counts = tiled.image_tokens([large, large.crop((0, 0, 16, 16))])  # a small image: one tile
    assert counts == [20, 4] and torch.equal(two[:20], tokens)


def test_the_budget_picks_fewer_tiles_and_too_small_a_budget_is_an_error(tiled, large):
    (free,) = tiled.layouts([large])
    (capped,) = tiled.layouts([large], max_image_tokens=12)
    assert capped.image_tokens <= 12 < free.image_tokens
    _, counts = tiled.image_tokens([large], max_image_tokens=12)
    assert counts == [capped.image_tokens]
    answer = tiled.ask(large, "what colour?", max_new_tokens=4, max_image_tokens=12)
    assert answer == greedy_reply_tiled(tiled, large, "what colour?", 4, 12)
    with pytest.raises(ValueError, match="budget of 3 is too small for one tile, which needs 4 tokens"):
        tiled.ask(large, "what colour?", max_image_tokens=3)
    with pytest.raises(ValueError, match="budget of 3 is too small"):
        tiled.caption(large, max_image_tokens=3)


@pytest.mark.parametrize("size", [(80, 16), (16, 70), (45, 29), (3, 200)])
def test_any_aspect_ratio_works(tiled, size):
    image = render(random_scene(random.Random(2)), 64).resize(size)
    (layout,) = tiled.layouts([image])
    _, counts = tiled.image_tokens([image])
    assert counts == [layout.image_tokens] and layout.rows * layout.cols <= 4
    assert tiled.ask(image, "what?", max_new_tokens=4) == greedy_reply_tiled(tiled, image, "what?", 4)


def greedy_reply_tiled(m: VisionLanguageModel, image, question: str, max_new: int, budget=None) -> str:
    """`greedy_reply` with the image's tiles encoded by `tile_image` and counted by its layout."""
    (layout,) = m.layouts([image], budget)
    ids, _ = m.chat.encode([{"role": "user", "content": question, "images": [image]}], [layout.image_tokens])
    with torch.no_grad():
        feats = m.model.image_tokens(image_pixels(tile_image(image, layout), m.cfg.vision)).flatten(0, 1)
        new = []
        for _ in range(max_new):
            nxt = int(m.model(torch.tensor([ids + new]), feats)[0, -1].argmax())
            if nxt == m.chat.end_id:
                break
            new.append(nxt)
    return m.tokenizer.decode(new, skip_special_tokens=True)


def test_cli_reports_the_layout_on_stderr_and_refuses_a_tiny_budget(
    tiled_dir, tiled, large, tmp_path, capsys
):
    path = tmp_path / "large.png"
    large.save(path)
    args = ["ask", "--model", str(tiled_dir), str(path), "what colour?", "--max-new-tokens", "4"]
    assert main([*args, "--max-image-tokens", "12"]) == 0
    out, err = capsys.readouterr()
    assert out == tiled.ask(path, "what colour?", max_new_tokens=4, max_image_tokens=12) + "\n"
    assert err == f"{path}: {tiled.layouts([path], 12)[0].describe()}\n"
    assert main(["caption", "--model", str(tiled_dir), str(path), "--max-new-tokens", "4"]) == 0
    assert "2x2 tiles of 16px + overview: 5 x 4 = 20 image tokens" in capsys.readouterr().err
    assert main([*args, "--max-image-tokens", "3"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("alltokens: error: an image-token budget of 3 is too small") and err.count("\n") == 1
    )
