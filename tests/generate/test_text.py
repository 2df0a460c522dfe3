"""The text layer: incremental detokenisation across split characters, and stop strings."""

from __future__ import annotations

import pytest
import tokenizers

from alltokens.generate.text import Detokenizer, TextStream, check_stop, held_back
from alltokens.tokenizers import byte_tokenizer

TEXT = "héllo 🎉 wörld ✓"


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def push_all(stream, ids: list[int]) -> list[str]:
    return [stream.push(i) for i in ids]


def test_split_characters_are_emitted_whole_and_as_soon_as_complete(tok):
    detok = Detokenizer(tok)
    pieces = push_all(detok, list(TEXT.encode()))
    assert all("\ufffd" not in p for p in pieces)
    assert [p for p in pieces if p] == list(TEXT)  # one piece per character, on its last byte
    assert detok.flush() == ""


def test_an_incomplete_character_at_the_end_becomes_a_replacement_only_at_flush(tok):
    ids = list(b"ok") + list("🎉".encode())[:2]
    detok = Detokenizer(tok)
    assert "".join(push_all(detok, ids)) == "ok"
    tail = detok.flush()
    assert tail and set(tail) == {"\ufffd"}
    assert "ok" + tail == tok.decode(ids)


def test_an_invalid_byte_inside_the_text_is_emitted_once_text_follows(tok):
    ids = list(b"a\xffb")
    detok = Detokenizer(tok)
    pieces = push_all(detok, ids)
    assert "".join(pieces) + detok.flush() == tok.decode(ids)
    assert "\ufffd" in "".join(pieces)


def test_the_context_is_not_emitted(tok):
    detok = Detokenizer(tok, context=list(b"a prompt: "))
    assert "".join(push_all(detok, list(b"abc"))) == "abc"


def test_a_sentencepiece_token_keeps_its_space_when_decoded_in_context():
    """Llama-style decoding drops the space of a text's first "▁word"; a completion must keep it."""
    vocab = {f"<0x{i:02X}>": i for i in range(256)} | {"▁Once": 256, "▁upon": 257, "▁a": 258, "▁": 259}
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[], byte_fallback=True))
    d = tokenizers.decoders
    tok.decoder = d.Sequence([d.Replace("▁", " "), d.ByteFallback(), d.Fuse(), d.Strip(" ", 1, 0)])
    assert tok.decode([257]) == "upon"
    detok = Detokenizer(tok, context=[256])
    pieces = push_all(detok, [257, 258, 259, *"🎉".encode()])
    assert [p for p in pieces if p] == [" upon", " a", " ", "🎉"]


def test_special_tokens_are_skipped(tok):
    detok = Detokenizer(tok)
    assert "".join(push_all(detok, [*b"ab", tok.eos_id, *b"c"])) == "abc"


def test_a_stop_string_ends_the_text_without_it(tok):
    stream = TextStream(tok, stop="lo w")
    pieces = push_all(stream, list(b"hello world"))
    assert "".join(pieces) == "hel" and stream.text == "hel"
    assert stream.stopped
    assert stream.push(ord("x")) == "" and stream.finish() == ""


def test_text_that_may_start_a_stop_string_is_held_back_until_it_cannot(tok):
    stream = TextStream(tok, stop="lo w")
    pieces = push_all(stream, list(b"hello there"))
    assert pieces == ["h", "e", "", "l", "", "", "lo t", "h", "e", "r", "e"]
    assert not stream.stopped and stream.finish() == ""


def test_held_back_text_is_released_at_the_end(tok):
    stream = TextStream(tok, stop=["xyz"])
    assert "".join(push_all(stream, list(b"abxy"))) == "ab"
    assert stream.finish() == "xy"


def test_the_earliest_of_several_stop_strings_wins(tok):
    stream = TextStream(tok, stop=["world", "o w", "🎉"])
    assert "".join(push_all(stream, list("hello world 🎉".encode()))) == "hell"


def test_a_stop_string_made_of_multi_byte_characters(tok):
    stream = TextStream(tok, stop="🎉")
    pieces = push_all(stream, list("ok 🎉 more".encode()))
    assert "".join(pieces) == "ok " and stream.stopped


def test_held_back():
    assert held_back("hello", ["lo w"]) == 2
    assert held_back("hello", ["xyz"]) == 0
    assert held_back("abc", ["c", "bcd"]) == 2  # the longest wins
    assert held_back("ab", []) == 0


@pytest.mark.parametrize("stop", ["", ["ok", ""], [3]])
def test_invalid_stop_strings(stop):
    with pytest.raises(ValueError, match="stop strings must be non-empty strings"):
        check_stop(stop)


def test_check_stop_accepts_none_one_or_many():
    assert check_stop(None) == ()
    assert check_stop("a") == ("a",)
    assert check_stop(["a", "b"]) == ("a", "b")
