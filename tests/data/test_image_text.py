"""Image-caption batches: deterministic and seekable, groups, folders, caption encoding, bad input."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image
from tokenizers.processors import TemplateProcessing

from alltokens.data.digits import DIGIT_NAMES
from alltokens.data.image_text import (
    VARIANTS,
    ImageTextBatches,
    encode_captions,
    image_text_sources,
    text_group,
)
from alltokens.data.shapes import write_shapes
from alltokens.tokenizers import byte_tokenizer
from alltokens.tokenizers.image import ImageError


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def batches(data, tok, seed=0, size=24, batch_size=6):
    train, val, identity = image_text_sources(data, seed, size)
    make = dict(
        tokenizer=tok, batch_size=batch_size, image_size=size, context=200, mean=[0.5] * 3, std=[0.5] * 3
    )
    return ImageTextBatches(train, **make), ImageTextBatches(val, **make), identity


def test_shapes_batches_are_deterministic_and_seekable(tok):
    a, val, identity = batches("shapes", tok)
    b, _, _ = batches("shapes", tok)
    assert identity == "shapes"
    first = a.batch(3)
    assert first["pixels"].shape == (6, 3, 24, 24) and first["groups"].shape == (6,)
    for key in first:
        assert torch.equal(first[key], b.batch(3)[key])
    b.seek(3)
    assert torch.equal(next(iter(b))["ids"], first["ids"])
    assert not torch.equal(a.batch(4)["pixels"], first["pixels"])
    other, _, _ = batches("shapes", tok, seed=1)
    assert not torch.equal(other.batch(3)["pixels"], first["pixels"])
    # validation re-iterates the same batches, and differs from training
    assert torch.equal(next(iter(val))["pixels"], next(iter(val))["pixels"])


def test_captions_end_in_eos_and_are_right_padded(tok):
    batch = batches("shapes", tok)[0].batch(0)
    ids, mask = batch["ids"], batch["attention_mask"]
    lengths = mask.sum(dim=1)
    assert torch.all(ids[torch.arange(len(ids)), lengths - 1] == tok.eos_id)
    assert torch.equal(mask, torch.arange(ids.shape[1]) < lengths[:, None])  # real tokens first


def test_shapes_groups_are_the_canonical_caption(tok):
    from alltokens.data.shapes import caption, captions, scene_stream

    source = image_text_sources("shapes", 0, 24)[0]
    stream = scene_stream(0, "train", 24)
    for i in range(0, 3 * VARIANTS, VARIANTS):  # the stream's scenes, each followed by near misses
        image, text, group = source.item(i)
        _, scene = stream[i]
        assert group == text_group(caption(scene))
        assert text in captions(scene)
        assert source.item(i + 1)[2] != group
    assert text_group("a red circle") == text_group("a red circle") != text_group("a red square")


def test_digits_groups_are_labels_and_captions_name_them(tok):
    train, val, identity = batches("digits", tok, size=16)
    assert identity == "digits"
    source = image_text_sources("digits", 0, 16)[0]
    for i in range(20):
        image, text, label = source.item(i)
        assert image.size == (16, 16) and 0 <= label <= 9
        words = set(re.findall(r"\w+", text))
        assert str(label) in words or DIGIT_NAMES[label] in words
    assert val.batch(0)["groups"].max() <= 9


def test_a_shapes_folder_trains(tmp_path, tok):
    write_shapes(tmp_path / "shapes", n=12, size=32, seed=0)
    train, val, fingerprint = batches(tmp_path / "shapes", tok, size=24, batch_size=4)
    assert len(fingerprint) == 64
    batch = train.batch(0)
    assert batch["pixels"].shape == (4, 3, 24, 24)
    assert val.batch(0)["pixels"].shape == (4, 3, 24, 24)


def test_an_images_and_txt_folder_trains_and_converts_modes(tmp_path, tok):
    for name, mode, colour in (("a", "RGB", (255, 0, 0)), ("b", "L", 128), ("c", "RGBA", (0, 0, 255, 128))):
        Image.new(mode, (20, 30), colour).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.txt").write_text(f"picture {name}\nanother phrasing of {name}\n")
    train, val, _ = batches(tmp_path, tok, size=16, batch_size=3)
    texts = [
        tok.decode(row[m][:-1]) for row, m in zip(train.batch(0)["ids"], train.batch(0)["attention_mask"])
    ]
    assert all(t.startswith(("picture", "another")) for t in texts)
    assert train.batch(0)["pixels"].shape == (3, 3, 16, 16)


def test_folder_errors_name_the_problem(tmp_path, tok):
    with pytest.raises(ValueError, match="unknown image-text data 'shapez'"):
        image_text_sources("shapez", 0, 16)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no training data"):
        image_text_sources(empty, 0, 16)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    Image.new("RGB", (8, 8)).save(lonely / "x.png")
    with pytest.raises(FileNotFoundError, match=r"x\.png has no caption file x\.txt"):
        image_text_sources(lonely, 0, 16)
    (lonely / "x.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"x\.txt is empty"):
        image_text_sources(lonely, 0, 16)
    (lonely / "x.txt").write_text("a black square")
    with pytest.raises(ValueError, match="at least 2"):
        image_text_sources(lonely, 0, 16)
    (lonely / "y.png").write_bytes(b"not a png at all")
    (lonely / "y.txt").write_text("broken")
    with pytest.raises(ImageError, match=r"y\.png"):
        image_text_sources(lonely, 0, 16)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "scenes.jsonl").write_text('{"file": "images/0.png"}\n')
    with pytest.raises(ValueError, match=r"scenes\.jsonl line 1"):
        image_text_sources(bad, 0, 16)
    (bad / "scenes.jsonl").write_text('{"file": "images/0.png", "captions": ["a red circle"]}\n')
    with pytest.raises(FileNotFoundError, match=r"images/0\.png"):
        image_text_sources(bad, 0, 16)


def test_encode_captions_appends_eos_once_and_refuses_long_texts(tok):
    ids, mask = encode_captions(tok, ["ab", "abcd"], context=8)
    assert ids.tolist()[1] == [*b"abcd", tok.eos_id]
    assert ids.tolist()[0][:3] == [*b"ab", tok.eos_id] and mask.tolist()[0] == [True] * 3 + [False] * 2
    with pytest.raises(ValueError, match=r"'abcdefgh' is 9 tokens long, over the text context of 8"):
        encode_captions(tok, ["abcdefgh"], context=8)


def test_encode_captions_keeps_a_post_processors_end_token():
    tok = byte_tokenizer()
    tok.hf.post_processor = TemplateProcessing(
        single="<|bos|> $A <|eos|>", special_tokens=[("<|bos|>", tok.bos_id), ("<|eos|>", tok.eos_id)]
    )
    ids, _ = encode_captions(tok, ["hi"], context=8)
    assert ids.tolist() == [[tok.bos_id, *b"hi", tok.eos_id]]  # the start token added, eos not doubled


def test_batches_need_two_pairs(tok):
    train = image_text_sources("shapes", 0, 24)[0]
    with pytest.raises(ValueError, match="at least 2"):
        ImageTextBatches(train, tok, 1, 24, 64, [0.5] * 3, [0.5] * 3)


def test_shapes_items_come_as_a_scene_and_its_near_misses():
    import random

    from alltokens.data.image_text import near_miss
    from alltokens.data.shapes import caption, random_scene
    from alltokens.data.shapes.scene import HELD_OUT

    rng = random.Random(0)
    for _ in range(300):
        scene = random_scene(rng)
        other = near_miss(scene, rng, "train")
        assert caption(other) != caption(scene)
        assert not any(o.pair in HELD_OUT for o in other.objects)
        assert len(other.objects) == len(scene.objects) and other.background == scene.background
    source = image_text_sources("shapes", 0, 24)[0]
    groups = [source.item(i)[2] for i in range(2 * VARIANTS)]
    for i, group in enumerate(groups):  # a near miss never repeats its scene's description
        assert (group == groups[i - i % VARIANTS]) == (i % VARIANTS == 0)
