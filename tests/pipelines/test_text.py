"""`TextModel`: text in, text out, streamed or not, batched or not; and mean-pooled embeddings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from alltokens.generate.scripted import ScriptedModel
from alltokens.models.lm import LM, LMConfig
from alltokens.pipelines.text import TextModel
from alltokens.tokenizers import byte_tokenizer

SONG = "héllo 🎉"


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def scripted(tok, *texts: str, eos: bool = True) -> TextModel:
    """A TextModel whose row i generates the bytes of texts[i], then eos."""
    scripts = [list(t.encode()) + ([tok.eos_id] if eos else []) for t in texts]
    return TextModel(ScriptedModel(scripts, tok.vocab_size), tok)


@pytest.fixture(scope="module")
def lm(tok) -> TextModel:
    torch.manual_seed(0)
    cfg = LMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=tok.vocab_size,
        max_position_embeddings=64,
    )
    model = LM(cfg)
    model.init_weights(std=0.3)
    return TextModel(model.eval(), tok)


def test_generate_decodes_multi_byte_characters_and_stops_at_eos(tok):
    assert scripted(tok, SONG).generate("Hi", max_new_tokens=50) == SONG


def test_stream_pieces_join_to_generate_and_never_show_a_half_character(tok):
    pieces = list(scripted(tok, SONG).stream("Hi", max_new_tokens=50))
    assert "".join(pieces) == SONG
    assert pieces == list(SONG)  # one piece per character, each on its last byte


def test_max_new_tokens_cuts_the_completion(tok):
    m = scripted(tok, "abcdefgh", eos=False)
    assert m.generate("Hi", max_new_tokens=5) == "abcde"
    assert m.generate("Hi", max_new_tokens=0) == ""


def test_a_character_cut_by_max_new_tokens_ends_as_a_replacement(tok):
    m = scripted(tok, "ok🎉")
    assert m.generate("Hi", max_new_tokens=4) == "ok" + tok.decode(list("🎉".encode())[:2])


@pytest.mark.parametrize("stop, want", [("lo", "hél"), (["🎉", "ll"], "hé"), ("o 🎉", "héll")])
def test_stop_strings_end_generate_and_stream(tok, stop, want):
    m = scripted(tok, SONG)
    assert m.generate("Hi", max_new_tokens=50, stop=stop) == want
    assert "".join(m.stream("Hi", max_new_tokens=50, stop=stop)) == want


def test_a_stop_string_ends_generation_early(tok):
    m = scripted(tok, "abc STOP" + "x" * 40)
    assert m.generate("Hi", max_new_tokens=48, stop="STOP") == "abc "
    assert len(m.model.calls) == len("abc STOP")


def test_a_batch_returns_one_completion_per_prompt(tok):
    m = scripted(tok, SONG, "ab", "a long one 🎉🎉")
    assert m.generate(["x", "a longer prompt", ""], max_new_tokens=50) == [SONG, "ab", "a long one 🎉🎉"]


def test_prompts_are_encoded_with_special_tokens_and_an_empty_one_starts_at_bos(tok):
    m = scripted(tok, "a")
    m.generate("Hi there", max_new_tokens=1)
    assert m.model.calls[0].ids[0].tolist() == tok.encode("Hi there", add_special_tokens=True)
    m = scripted(tok, "a")
    m.generate("", max_new_tokens=1)
    assert m.model.calls[0].ids.tolist() == [[tok.bos_id]]


def test_an_empty_prompt_without_a_bos_token():
    no_bos = SimpleNamespace(encode=lambda text, add_special_tokens=False: [], bos_id=None, eos_id=None)
    m = TextModel(ScriptedModel([[1]], vocab_size=4), no_bos)
    with pytest.raises(ValueError, match="prompt is empty and the tokenizer has no bos token"):
        m.generate("", max_new_tokens=1)


def test_greedy_stream_equals_generate_on_a_real_model(lm):
    text = lm.generate("Once upon a time", max_new_tokens=24, temperature=0)
    assert isinstance(text, str)
    assert "".join(lm.stream("Once upon a time", max_new_tokens=24, temperature=0)) == text


def test_seeded_sampling_reproduces_and_streams_the_same(lm):
    kwargs = dict(max_new_tokens=24, temperature=1.0, top_k=50, seed=3)
    text = lm.generate("Once", **kwargs)
    assert lm.generate("Once", **kwargs) == text
    assert "".join(lm.stream("Once", **kwargs)) == text
    assert lm.generate("Once", **{**kwargs, "seed": 4}) != text


def test_a_greedy_batch_equals_one_by_one(lm):
    prompts = ["Once upon a time", "Hi", "the 🎉 party"]
    batch = lm.generate(prompts, max_new_tokens=12, temperature=0)
    assert batch == [lm.generate(p, max_new_tokens=12, temperature=0) for p in prompts]


def test_bad_arguments_raise_before_the_first_token(lm):
    with pytest.raises(ValueError, match="temperature"):
        lm.stream("Hi", temperature=-1)
    with pytest.raises(ValueError, match="stop strings"):
        lm.stream("Hi", stop="")
    with pytest.raises(ValueError, match="max_new_tokens"):
        lm.stream("Hi", max_new_tokens=-2)
    with pytest.raises(ValueError, match="context of 64"):
        lm.stream("Hi", max_new_tokens=100)
    with pytest.raises(ValueError, match="stream takes one prompt string"):
        lm.stream(["a", "b"])


def test_embed_is_unit_length_and_a_batch_equals_one_by_one(lm):
    texts = ["a cat", "a much longer sentence about dogs", "🎉"]
    vectors = lm.embed(texts)
    assert vectors.shape == (3, lm.cfg.hidden_size)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(3))
    for text, row in zip(texts, vectors):
        torch.testing.assert_close(lm.embed([text])[0], row, atol=1e-5, rtol=1e-5)
    assert (vectors[0] - vectors[1]).abs().max() > 1e-3


@pytest.mark.parametrize("texts", ["one string", []], ids=["str", "empty"])
def test_embed_needs_a_list_of_texts(lm, texts):
    with pytest.raises(ValueError, match="non-empty list of texts"):
        lm.embed(texts)


def test_embed_rejects_a_text_longer_than_the_context(lm):
    with pytest.raises(ValueError, match="100 tokens, longer than the model's context of 64"):
        lm.embed(["x" * 100])
