"""The one `Tokenizer` interface, checked on both of our tokenizers (bytes and trained BPE)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alltokens.tokenizers import SPECIAL_TOKENS, Tokenizer, byte_tokenizer, load_tokenizer, visible

PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# arbitrary Unicode, sometimes with our special-token strings spliced in
texts = st.lists(st.one_of(st.text(), st.sampled_from(SPECIAL_TOKENS)), max_size=6).map("".join)


def without_specials(s: str) -> bool:
    return not any(sp in s for sp in SPECIAL_TOKENS)


@PROPERTY
@given(s=texts)
def test_decode_inverts_encode(tok: Tokenizer, s: str) -> None:
    assert tok.decode(tok.encode(s)) == s


@PROPERTY
@given(s=st.text().filter(without_specials))
def test_byte_tokenizer_ids_are_the_utf8_bytes(s: str) -> None:
    assert byte_tokenizer().encode(s) == list(s.encode("utf-8"))


def test_byte_tokenizer_layout() -> None:
    tok = byte_tokenizer()
    assert tok.vocab_size == 256 + len(SPECIAL_TOKENS)
    assert [tok.token_to_id(s) for s in SPECIAL_TOKENS] == list(range(256, 256 + len(SPECIAL_TOKENS)))
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (256, 257, 258)
    assert tok.special_ids == frozenset(range(256, tok.vocab_size))


def test_special_tokens_are_single_ids_and_never_split(tok: Tokenizer) -> None:
    for sp in SPECIAL_TOKENS:
        i = tok.token_to_id(sp)
        assert tok.encode(sp) == [i]
        ids = tok.encode(f"ab{sp}cd{sp}")
        assert ids.count(i) == 2
        assert ids[-1] == i
        assert tok.decode(ids, skip_special_tokens=True) == "abcd"
    # a near miss is ordinary text
    assert not set(tok.encode("<|bos|")) & tok.special_ids


def test_our_tokenizers_add_no_special_tokens(tok: Tokenizer) -> None:
    assert tok.encode("hello", add_special_tokens=True) == tok.encode("hello")


def test_invalid_utf8_decodes_to_replacement_character() -> None:
    tok = byte_tokenizer()
    assert tok.decode([0xFF, ord("A"), 0xE2, 0x82]) == "\ufffdA\ufffd"


def test_decode_takes_a_1d_tensor(tok: Tokenizer) -> None:
    ids = tok.encode("tensor café")
    assert tok.decode(torch.tensor(ids)) == "tensor café"


@pytest.mark.parametrize("ids", [[65, 99999], [-1], torch.zeros(2, 3, dtype=torch.long)])
def test_decode_rejects_bad_ids(tok: Tokenizer, ids: object) -> None:
    with pytest.raises(ValueError, match="outside the vocabulary|1-D"):
        tok.decode(ids)


def test_id_to_token_rejects_out_of_range(tok: Tokenizer) -> None:
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.id_to_token(tok.vocab_size)


@pytest.mark.parametrize("side", ["left", "right"])
def test_encode_batch_pads_and_masks(tok: Tokenizer, side: str) -> None:
    batch = ["a", "the quick brown fox 😀", "", "café <|user|> x"]
    ids, mask = tok.encode_batch(batch, padding_side=side)
    rows = [tok.encode(t) for t in batch]
    T = max(map(len, rows))
    assert ids.shape == mask.shape == (len(batch), T)
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    for b, row in enumerate(rows):
        assert mask[b].sum().item() == len(row)
        assert ids[b][mask[b]].tolist() == row
        assert (ids[b][~mask[b]] == tok.pad_id).all()
        kept = mask[b].nonzero().flatten().tolist()
        expected = range(T - len(row), T) if side == "left" else range(len(row))
        assert kept == list(expected)


def test_encode_batch_rejects_bad_arguments(tok: Tokenizer) -> None:
    with pytest.raises(ValueError, match="padding_side"):
        tok.encode_batch(["a"], padding_side="middle")
    with pytest.raises(ValueError, match="list of texts"):
        tok.encode_batch("a single string")


def test_encode_batch_of_nothing_is_empty(tok: Tokenizer) -> None:
    ids, mask = tok.encode_batch([])
    assert ids.shape == mask.shape == (0, 0)


def test_pieces_show_each_token(tok: Tokenizer) -> None:
    text = "the fox <|eos|> café 😀"
    pieces = tok.pieces(text)
    assert [i for _, i in pieces] == tok.encode(text)
    assert ("<|eos|>", tok.eos_id) in pieces
    shown = "".join(p for p, _ in pieces)
    if tok.vocab_size == byte_tokenizer().vocab_size:  # bytes: multi-byte characters show loose bytes
        assert shown.startswith("the fox <|eos|> caf\\xc3\\xa9 ")
    else:  # the BPE learned these words, so whole characters come out
        assert shown == text


def test_visible_marks_whitespace_and_controls() -> None:
    assert visible(" a\tb\nc\r\x00é") == "␣a\\tb\\nc\\r\\x00é"


def test_save_and_reload_encodes_identically(tok: Tokenizer, tmp_path) -> None:
    tok.save(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    text = "the quick <|user|> naïve 日本語 😀\n\tdef f(): return 1"
    assert again.encode(text) == tok.encode(text)
    assert (again.vocab_size, again.bos_id, again.eos_id, again.pad_id) == (
        tok.vocab_size,
        tok.bos_id,
        tok.eos_id,
        tok.pad_id,
    )
    assert again.special_ids == tok.special_ids
    config = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    assert (config["bos_token"], config["eos_token"], config["pad_token"]) == (
        "<|bos|>",
        "<|eos|>",
        "<|pad|>",
    )


def test_hugging_face_reads_our_saved_directory(tok: Tokenizer, tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    tok.save(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    text = "the quick <|user|> naïve 😀 x = 1 + 2"
    assert hf(text)["input_ids"] == tok.encode(text, add_special_tokens=True)
    assert hf.decode(tok.encode(text)) == text
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (tok.bos_id, tok.eos_id, tok.pad_id)


def test_save_into_a_file_fails(tok: Tokenizer, tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        tok.save(tmp_path / "f")
