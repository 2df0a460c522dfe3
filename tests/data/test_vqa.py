"""The one VLM prompt format and the shapes VQA batches built with it, tiled and on large canvases."""

from __future__ import annotations

import random

import pytest
import torch

from alltokens.data.shapes import COLOURS, SHAPES, canvas_captions, canvas_questions, caption, scene_stream
from alltokens.data.vqa import (
    CAPTION_PROMPT,
    ChatFormat,
    VQABatches,
    colour_word_ids,
    pack_rows,
    tiled_pixels,
)
from alltokens.models.lm import LMConfig
from alltokens.models.vit import ViTConfig
from alltokens.models.vlm import VLM, VLMConfig
from alltokens.tokenizers import byte_tokenizer
from alltokens.train.recipes.clip import captions_tokenizer
from alltokens.train.recipes.vlm import image_next_token

K = 4


@pytest.fixture(scope="module")
def chat() -> ChatFormat:
    return ChatFormat(byte_tokenizer())


def special(chat: ChatFormat, name: str) -> int:
    return chat.tokenizer.token_to_id(f"<|{name}|>")


def test_example_layout_and_answer_only_targets(chat):
    tok = chat.tokenizer
    ids, targets = chat.example([("what colour is the circle?", "red")], K)
    image_block = [special(chat, "image_start"), *[special(chat, "image")] * K, special(chat, "image_end")]
    question, answer = tok.encode("what colour is the circle?"), tok.encode("red")
    end = special(chat, "end")
    expected = [special(chat, "user"), *question, *image_block, end, special(chat, "assistant"), *answer, end]
    assert ids == expected
    assert [i for i, t in zip(ids, targets) if t] == [*answer, end]
    assert tok.decode([i for i, t in zip(ids, targets) if t]) == "red<|end|>"


def test_markers_place_images_and_must_match_the_images(chat):
    ids, _ = chat.encode([{"role": "user", "content": "left <|image|> right", "images": ["a"]}], [2])
    text = chat.tokenizer.decode(ids)
    assert text == "<|user|>left <|image_start|><|image|><|image|><|image_end|> right<|end|><|assistant|>"
    unmarked, _ = chat.encode([{"role": "user", "content": "hi", "images": ["a", "b"]}], [1, 2])
    assert chat.tokenizer.decode(unmarked).startswith(  # no markers: the images after the text
        "<|user|>hi<|image_start|><|image|><|image_end|><|image_start|><|image|><|image|><|image_end|><|end|>"
    )
    with pytest.raises(ValueError, match="2 <\\|image\\|> marker.*1 image"):
        chat.encode([{"role": "user", "content": "<|image|> and <|image|>", "images": ["a"]}], [K])
    with pytest.raises(ValueError, match="1 image.*0 token counts"):
        chat.encode([{"role": "user", "content": "x", "images": ["a"]}], [])


def test_multi_turn_targets_every_assistant_turn(chat):
    messages = [
        {"role": "user", "content": "what colour?", "images": ["a"]},
        {"role": "assistant", "content": "red"},
        {"role": "user", "content": "and the shape?"},
    ]
    ids, targets = chat.encode(messages, [K])
    assert ids[-1] == special(chat, "assistant") and not targets[-1]
    assert chat.tokenizer.decode([i for i, t in zip(ids, targets) if t]) == "red<|end|>"
    full, full_targets = chat.encode([*messages, {"role": "assistant", "content": "circle"}], [K])
    assert chat.tokenizer.decode([i for i, t in zip(full, full_targets) if t]) == "red<|end|>circle<|end|>"


def test_bad_conversations_and_tokenizers_are_refused(chat):
    with pytest.raises(ValueError, match="role 'system'"):
        chat.encode([{"role": "system", "content": "x"}], [])
    with pytest.raises(ValueError, match="content"):
        chat.encode([{"role": "user"}], [])
    with pytest.raises(ValueError, match="at least one message"):
        chat.encode([], [])

    class NoSpecials:
        def token_to_id(self, token):
            return None

    with pytest.raises(ValueError, match="lacks the special token"):
        ChatFormat(NoSpecials())


def vision() -> ViTConfig:
    return ViTConfig(image_size=24, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)


def config(chat: ChatFormat, **tiling) -> VLMConfig:
    """A VLM config with the tower above (3x3 patches: 9 tokens per tile) and the byte tokenizer."""
    lm = LMConfig(
        vocab_size=chat.tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    )
    return VLMConfig(vision=vision(), lm=lm, image_token_id=chat.image_id, feature_layer=-1, **tiling)


def test_batches_are_deterministic_seekable_and_mask_only_answers(chat):
    data = VQABatches(chat, config(chat), batch_size=4, seed=3, questions=3, caption_fraction=0.5, pack=False)
    b = data.batch(2)
    assert b["pixels"].shape == (4, 3, 24, 24) and b["ids"].shape == b["loss_mask"].shape
    assert b["ids"].shape[0] == 12  # 4 images x 3 questions
    torch.testing.assert_close(data.batch(2)["ids"], b["ids"])
    data.seek(2)
    torch.testing.assert_close(next(iter(data))["pixels"], b["pixels"])
    # each image's three conversations are rows of their own, which share that image's pass of the tower
    assert b["image_index"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for row in range(12):
        _, pairs = data.item(2 * 4 + row // 3)
        question, answer = pairs[row % 3]
        targets = b["ids"][row][b["loss_mask"][row]]
        assert chat.tokenizer.decode(targets) == f"{answer}<|end|>"
        assert question in chat.tokenizer.decode(b["ids"][row])
        assert (b["ids"][row] == special(chat, "image")).sum() == 9
    other_rank = VQABatches(chat, config(chat), batch_size=4, seed=3, rank=1, world_size=2)
    torch.testing.assert_close(
        other_rank.batch(1)["ids"], VQABatches(chat, config(chat), 4, 3).batch(3)["ids"]
    )


def test_pack_rows_places_every_sequence_once_within_the_capacity():
    lengths = [5, 9, 3, 7, 2, 8, 4]
    rows = pack_rows(lengths, 10)
    assert sorted(i for row in rows for i in row) == list(range(7))
    assert all(sum(lengths[i] for i in row) <= 10 for row in rows) and all(row == sorted(row) for row in rows)
    assert len(rows) == 4  # 38 tokens need at least 4 rows of 10
    assert pack_rows([4, 4], 8) == [[0, 1]] and pack_rows([], 8) == []
    with pytest.raises(ValueError, match="a sequence of 9 tokens does not fit rows of 8"):
        pack_rows([9, 2], 8)


@pytest.mark.parametrize("tiled", [False, True])
def test_packed_batches_hold_every_conversation_and_give_the_same_loss_and_gradients(chat, tiled):
    """Packing is only a layout: the same conversations with the same images (or tiles), the same loss."""
    kw = dict(batch_size=6, seed=3, questions=3, caption_fraction=0.5)
    cfg = config(chat, max_tiles=6) if tiled else config(chat)
    if tiled:
        kw["canvas"] = (72, 48)  # 2x3 tiles + the overview: 7 runs of placeholders per conversation
    packed = VQABatches(chat, cfg, **kw).batch(1)
    rows = VQABatches(chat, cfg, pack=False, **kw).batch(1)
    assert packed["ids"].shape[0] < rows["ids"].shape[0] == 18
    assert packed["ids"].shape[1] <= 2 * rows["ids"].shape[1]

    def conversations(b: dict) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """(ids, the image of each of its runs of placeholders) of every conversation in a batch."""
        if "segments" in b:
            segments = b["segments"]
        else:  # a row per conversation, up to its last target (the reply's end); then padding
            last = torch.arange(b["ids"].shape[1]).masked_fill(~b["loss_mask"], 0).amax(1)  # (R,)
            segments = torch.where(torch.arange(b["ids"].shape[1]) <= last[:, None], 0, -1)
        runs, out = iter(b["image_index"].tolist()), []
        for ids, seg in zip(b["ids"], segments):
            for k in seg.unique().tolist():
                if k < 0:
                    continue
                conv = ids[seg == k]
                placeholders = int((conv == chat.image_id).sum()) // 9
                out.append((tuple(conv.tolist()), tuple(next(runs) for _ in range(placeholders))))
        return sorted(out)

    assert conversations(packed) == conversations(rows)
    torch.manual_seed(0)
    model = VLM(cfg)
    model.init_weights()
    losses, grads = [], []
    for b in (packed, rows):
        model.zero_grad()
        loss, _ = image_next_token(model, b)
        loss.backward()
        losses.append(loss)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def kind_of(question: str) -> str:
    """The kind of a shapes question, from its wording."""
    starts = {"how many": "count", "where": "position", "is there": "exists", "is the": "relation"}
    for start, kind in starts.items():
        if question.startswith(start):
            return kind
    return "colour" if "colour" in question else "shape"


def test_conversations_ask_different_kinds_and_sometimes_the_caption(chat):
    data = VQABatches(chat, config(chat), batch_size=2, seed=1, questions=3, caption_fraction=0.3)
    scenes = scene_stream(1, "train", 24)
    with_caption = 0
    for i in range(60):
        _, pairs = data.item(i)
        scene = scenes[i][1]
        assert len(pairs) == 3
        asked = [q for q, _ in pairs if q != CAPTION_PROMPT]
        assert len({kind_of(q) for q in asked}) == len(asked)
        if len(asked) == 2:  # the caption instead of one question
            with_caption += 1
            assert (CAPTION_PROMPT, caption(scene)) in pairs
    assert 8 < with_caption < 30


def test_caption_batches_answer_the_canonical_caption(chat):
    data = VQABatches(chat, config(chat), batch_size=2, seed=0, task="caption", questions=3)
    scenes = scene_stream(0, "train", 24)
    for i in range(3):
        assert data.item(i)[1] == [(CAPTION_PROMPT, caption(scenes[i][1]))]
    with pytest.raises(ValueError, match="unknown task"):
        VQABatches(chat, config(chat), 2, 0, task="vqa")
    with pytest.raises(ValueError, match="caption_fraction"):
        VQABatches(chat, config(chat), 2, 0, caption_fraction=1.5)
    with pytest.raises(ValueError, match="questions"):
        VQABatches(chat, config(chat), 2, 0, questions=0)


def test_an_example_longer_than_the_context_is_an_error(chat):
    data = VQABatches(chat, config(chat), batch_size=2, seed=0, task="caption", context=20)
    with pytest.raises(ValueError, match=r"of \d+ input tokens exceeds the language model's context of 20"):
        data.batch(0)


def test_tiled_batches_hold_each_images_tiles_in_row_order(chat):
    cfg = config(chat, max_tiles=6)  # a 72x48 canvas is 2x3 tiles of 24px + the overview: 7 x 9 tokens
    data = VQABatches(chat, cfg, batch_size=3, seed=2, questions=2, canvas=(72, 48), pack=False)
    b = data.batch(1)
    assert b["pixels"].shape == (3 * 7, 3, 24, 24)
    tiles_of = [list(range(7 * j, 7 * j + 7)) for j in range(3)]  # image j's tiles, two rows each
    assert b["image_index"].tolist() == [t for j in range(3) for _ in range(2) for t in tiles_of[j]]
    for j in range(3):
        image, _ = data.item(3 + j)
        assert image.size == (72, 48)
        tiles, (layout,) = tiled_pixels([image], cfg)
        assert (layout.rows, layout.cols, layout.overview) == (2, 3, True)
        torch.testing.assert_close(b["pixels"][7 * j : 7 * (j + 1)], tiles)
        for row in (2 * j, 2 * j + 1):
            assert (b["ids"][row] == special(chat, "image")).sum() == layout.image_tokens == 63
    untiled = VQABatches(chat, config(chat), batch_size=3, seed=2, canvas=(72, 48), pack=False).batch(1)
    assert untiled["pixels"].shape == (3, 3, 24, 24)  # tiling off: the canvas shrunk to one input
    assert (untiled["ids"][0] == special(chat, "image")).sum() == 9


def test_large_scenes_are_asked_only_what_stays_true(chat):
    data = VQABatches(
        chat, config(chat), batch_size=2, seed=4, questions=3, caption_fraction=0.5, canvas=(48, 72)
    )
    for i in range(40):
        image, pairs = data.item(i)
        scene = data.scenes[i][1]
        allowed = {(qa.question, qa.answer) for qa in canvas_questions(scene, random.Random(f"vqa:4:{i}"))}
        for question, answer in pairs:
            if question == CAPTION_PROMPT:
                assert answer == canvas_captions(scene)[0]
            else:
                assert kind_of(question) != "position" and (question, answer) in allowed
    caption_data = VQABatches(chat, config(chat), batch_size=2, seed=4, task="caption", canvas=(48, 72))
    assert caption_data.item(0)[1] == [(CAPTION_PROMPT, canvas_captions(caption_data.scenes[0][1])[0])]


def test_colour_noise_swaps_reply_colour_words_as_inputs_only():
    chat = ChatFormat(captions_tokenizer(512, 100))  # the shapes BPE: each colour word one token
    colours = set(colour_word_ids(chat.tokenizer))
    plain = VQABatches(chat, config(chat), batch_size=8, seed=5, task="caption")
    assert "inputs" not in plain.batch(0)
    data = VQABatches(chat, config(chat), batch_size=8, seed=5, task="caption", colour_noise=1.0)
    b = data.batch(0)
    torch.testing.assert_close(b["ids"], plain.batch(0)["ids"])  # the targets stay true
    changed = b["inputs"] != b["ids"]
    assert changed.any() and (changed <= b["loss_mask"]).all()  # only reply tokens
    assert all(i in colours for i in b["inputs"][changed].tolist() + b["ids"][changed].tolist())
    swapped = said = 0
    for n in range(10):
        bn = data.batch(n)
        swapped += int((bn["inputs"] != bn["ids"]).sum())
        said += int((torch.isin(bn["ids"], torch.tensor(sorted(colours))) & bn["loss_mask"]).sum())
    assert 0.75 < swapped / said < 0.97  # every one swapped, 1 in 8 for the same colour
    torch.testing.assert_close(data.batch(0)["inputs"], b["inputs"])  # a pure function of n
    questions = VQABatches(chat, config(chat), batch_size=8, seed=5, questions=3, colour_noise=1.0).batch(0)
    asked = questions["inputs"] != questions["ids"]
    assert (asked <= questions["loss_mask"]).all()  # a question's colour words are never touched
    with pytest.raises(ValueError, match="' red' is 4 tokens"):
        VQABatches(ChatFormat(byte_tokenizer()), config(chat), 2, 0, colour_noise=0.5)
    with pytest.raises(ValueError, match="colour_noise must be in"):
        VQABatches(chat, config(chat), 2, 0, colour_noise=2.0)


def test_question_noise_renames_only_objects_whose_answer_no_name_changes(chat):
    plain = VQABatches(chat, config(chat), batch_size=2, seed=6, questions=6)
    data = VQABatches(chat, config(chat), batch_size=2, seed=6, questions=6, question_noise=1.0)
    renamed = kept = 0
    for index in range(300):
        scene = data.scenes[index][1]
        for (q0, a0), (q1, a1) in zip(plain.item(index)[1], data.item(index)[1]):
            assert a1 == a0  # the answer stays true
            if q1 == q0:
                kept += 1
                continue
            renamed += 1
            kind = "shape" if a0 in SHAPES else "colour"
            assert len({getattr(o, kind) for o in scene.objects}) == 1, (scene, q0, q1)
            changed = [(w0, w1) for w0, w1 in zip(q0.split(), q1.split()) if w0 != w1]
            assert len(changed) == 1 and len(q0.split()) == len(q1.split())
            words = COLOURS if kind == "shape" else SHAPES
            assert changed[0][0].strip("?") in words and changed[0][1].strip("?") in words
    assert 0.05 < renamed / (renamed + kept) < 0.25  # shape and colour questions of some scenes only
    assert data.item(7) == data.item(7)  # a pure function of the index
    with pytest.raises(ValueError, match="question_noise must be in"):
        VQABatches(chat, config(chat), 2, 0, question_noise=-0.1)
