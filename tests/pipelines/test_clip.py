"""`CLIPModel`: what `alltokens.load` returns for a CLIP; embeddings, zero-shot classes, search, errors."""

from __future__ import annotations

import random

import pytest
import torch
from PIL import Image

import alltokens
from alltokens.cli import main
from alltokens.data.shapes import random_scene, render
from alltokens.io.checkpoint import save_weights, write_json
from alltokens.models.clip import CLIP, CLIPConfig, clip_text_config
from alltokens.models.vit import ViTConfig
from alltokens.pipelines.clip import CLIPModel
from alltokens.tokenizers import byte_tokenizer
from alltokens.tokenizers.image import ImageError

CONTEXT = 20


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """An untrained tiny CLIP saved as a run directory, with the byte tokenizer."""
    tok = byte_tokenizer()
    vision = ViTConfig(
        image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    )
    text = clip_text_config(
        vocab_size=tok.vocab_size,
        pad_token_id=tok.pad_id,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=CONTEXT,
    )
    cfg = CLIPConfig(vision=vision, text=text, projection_dim=8)
    torch.manual_seed(0)
    model = CLIP(cfg)
    model.init_weights()
    out = tmp_path_factory.mktemp("clip")
    write_json(out / "config.json", cfg.to_dict())
    save_weights(out, model.state_dict())
    tok.save(out)
    return out


@pytest.fixture(scope="module")
def m(clip_dir):
    return alltokens.load(clip_dir)


def images(n: int, size: int = 24) -> list[Image.Image]:
    rng = random.Random(n)
    return [render(random_scene(rng), size, rng) for _ in range(n)]


def test_load_gives_a_clip_model_with_unit_embeddings(m):
    assert isinstance(m, CLIPModel)
    txt = m.embed_text(["a red circle", "a blue square", "x"])
    img = m.embed_image(images(3))
    assert txt.shape == (3, 8) and img.shape == (3, 8)
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(3))
    # batching does not change the vectors
    m.batch_size = 2
    torch.testing.assert_close(m.embed_text(["a red circle", "a blue square", "x"]), txt, atol=1e-5, rtol=0)
    m.batch_size = 64


def test_any_image_mode_and_files_are_accepted(m, tmp_path):
    rgb = images(1)[0]
    rgb.save(tmp_path / "a.png")
    gray, rgba = rgb.convert("L"), rgb.convert("RGBA")
    vectors = m.embed_image([rgb, tmp_path / "a.png", str(tmp_path / "a.png"), gray, rgba])
    torch.testing.assert_close(vectors[1], vectors[0])
    torch.testing.assert_close(vectors[2], vectors[0])
    torch.testing.assert_close(vectors[4], vectors[0], atol=1e-5, rtol=0)  # opaque alpha changes nothing
    assert vectors.shape == (5, 8)


def test_classify_rows_are_probabilities_in_label_order(m):
    labels = ["a red circle", "a blue square", "a green triangle"]
    probs = m.classify(images(4), labels)
    assert probs.shape == (4, 3)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(4))
    swapped = m.classify(images(4), labels[::-1])
    torch.testing.assert_close(swapped, probs.flip(dims=[1]), atol=1e-5, rtol=0)


def test_errors_name_what_is_wrong(m, tmp_path):
    with pytest.raises(ValueError, match="nonempty list of label"):
        m.classify(images(1), [])
    with pytest.raises(ValueError, match="at least one image"):
        m.classify([], ["a red circle"])
    with pytest.raises(
        ValueError, match=r"'a much longer label text' is 25 tokens long, over the text context of 20"
    ):
        m.classify(images(1), ["ok", "a much longer label text"])
    with pytest.raises(ValueError, match="not one string"):
        m.embed_text("a red circle")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageError, match=r"bad\.png"):
        m.embed_image([tmp_path / "bad.png"])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        m.embed_image([tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="query is empty"):
        m.search("  ", images(2))
    with pytest.raises(ValueError, match="top_k"):
        m.search("a", images(2), top_k=0)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        m.search("a", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        m.search("a", tmp_path / "empty")


def test_search_ranks_indices_or_files(m, tmp_path):
    pictures = images(4)
    ranked = m.search("a red circle", pictures, top_k=10)
    assert sorted(i for i, _ in ranked) == [0, 1, 2, 3]
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    for i, image in enumerate(pictures):
        image.save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    by_file = m.search("a red circle", tmp_path, top_k=2)
    assert [p.name for p, _ in by_file] == [f"{i}.png" for i, _ in ranked[:2]]


def test_cli_classify_and_search(clip_dir, tmp_path, capsys):
    for i, image in enumerate(images(3)):
        image.save(tmp_path / f"{i}.png")
    files = [str(tmp_path / f"{i}.png") for i in range(2)]
    assert (
        main(["classify", "--model", str(clip_dir), *files, "--labels", "a red circle, a blue square"]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == files[0] and out[3] == files[1] and len(out) == 6
    shares = [float(line.split("%")[0]) for line in out[1:3]]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(100, abs=0.2)
    assert (
        main(["search", "--model", str(clip_dir), "--query", "a red circle", str(tmp_path), "--top", "2"])
        == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["classify", "--model", str(clip_dir), files[0], "--labels", " , "]) == 2
    assert "nonempty list of label" in capsys.readouterr().err


@pytest.mark.slow
def test_search_finds_the_described_scene_with_a_trained_model(shapes_clip):
    """Eight one-object scenes of different (colour, shape) pairs; each one's caption finds it."""
    from alltokens.data.shapes import caption

    m = alltokens.load(shapes_clip)
    rng = random.Random(7)
    scenes = {}
    while len(scenes) < 8:
        scene = random_scene(rng, "train", n_objects=1)
        scenes.setdefault(scene.objects[0].pair, scene)
    size = m.cfg.vision.image_size
    pictures = [render(s, size, rng) for s in scenes.values()]
    hits = [m.search(caption(s), pictures, top_k=1)[0][0] == i for i, s in enumerate(scenes.values())]
    assert sum(hits) >= 7, hits


def test_a_hugging_face_clip_directory_with_its_tokenizer(tmp_path):
    """A `transformers` CLIPModel saved with a CLIP-style tokenizer (a post-processor that adds the
    start and end-of-text tokens, the end token the largest id) gives the embeddings `transformers`
    gives, through `alltokens.load`: the end token is not appended twice, padding is not pooled."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from alltokens.tokenizers.image import CLIP_MEAN, CLIP_STD, to_pixels

    words = ["[UNK]", "a", "red", "blue", "circle", "square", "at", "the", "top", "left"]
    vocab = {w: i for i, w in enumerate(words)} | {"<|startoftext|>": 10, "<|endoftext|>": 11}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 10), ("<|endoftext|>", 11)],
    )
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    tok.save(str(tmp_path / "tokenizer.json"))
    config = transformers.CLIPConfig(
        vision_config=dict(
            hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
        ),
        text_config=dict(
            vocab_size=12, hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=16, bos_token_id=10, eos_token_id=11, pad_token_id=11,
        ),
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.CLIPModel(config).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)

    m = alltokens.load(tmp_path)
    texts = ["a red circle at the top left", "a blue square"]
    ours = m.embed_text(texts)
    with torch.no_grad():
        for text, vector in zip(texts, ours):
            ids = torch.tensor([[10, *(vocab[w] for w in text.split()), 11]])
            theirs = hf.get_text_features(input_ids=ids)
            theirs = getattr(theirs, "pooler_output", theirs)
            torch.testing.assert_close(
                vector, torch.nn.functional.normalize(theirs[0], dim=-1), atol=1e-4, rtol=0
            )
        picture = images(1, size=40)[0]
        pixels = to_pixels([picture], 32, "crop", CLIP_MEAN, CLIP_STD)
        theirs = hf.get_image_features(pixel_values=pixels)
        theirs = getattr(theirs, "pooler_output", theirs)
    expected = torch.nn.functional.normalize(theirs[0], dim=-1)
    torch.testing.assert_close(m.embed_image([picture])[0], expected, atol=1e-4, rtol=0)
