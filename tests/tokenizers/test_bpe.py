"""Training our byte-level BPE: layout, compression, determinism, and clear errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import tokenizers
from tokenizers import models, pre_tokenizers, trainers

from alltokens.tokenizers import SPECIAL_TOKENS, Tokenizer, byte_tokenizer, train_bpe
from alltokens.tokenizers.bpe import MIN_VOCAB_SIZE, _bytes_first
from alltokens.tokenizers.byte_level import BYTE_TO_CHAR


def test_layout_bytes_first_specials_last(bpe: Tokenizer) -> None:
    assert MIN_VOCAB_SIZE < bpe.vocab_size <= 400
    assert [bpe.token_to_id(c) for c in BYTE_TO_CHAR] == list(range(256))
    first_special = bpe.vocab_size - len(SPECIAL_TOKENS)
    assert [bpe.token_to_id(s) for s in SPECIAL_TOKENS] == list(range(first_special, bpe.vocab_size))
    assert (bpe.bos_id, bpe.eos_id, bpe.pad_id) == (first_special, first_special + 1, first_special + 2)
    for b in range(128):  # a lone ASCII character can only be its byte
        assert bpe.encode(chr(b)) == [b]


def test_bpe_compresses_its_corpus(bpe: Tokenizer, corpus: Path) -> None:
    text = corpus.read_text(encoding="utf-8")
    assert len(bpe.encode(text)) * 2 < len(byte_tokenizer().encode(text))


def test_renumbering_changes_no_segmentation(corpus: Path) -> None:
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.train([str(corpus)], trainers.BpeTrainer(vocab_size=350, initial_alphabet=list(BYTE_TO_CHAR)))
    renumbered = _bytes_first(hf)
    renumbered.pre_tokenizer = hf.pre_tokenizer
    text = "the lazy über fox 😀 jumps\n def data(): return données"
    assert renumbered.encode(text).tokens == hf.encode(text).tokens
    assert renumbered.get_vocab_size() == hf.get_vocab_size()


def test_training_is_deterministic(corpus: Path, bpe: Tokenizer) -> None:
    again = train_bpe(str(corpus), vocab_size=400)  # a single path works too
    assert again.hf.to_str() == bpe.hf.to_str()


def test_several_files_train_on_all_of_them(tmp_path: Path, write_corpus) -> None:
    a = write_corpus(tmp_path / "a.txt", seed=1)
    b = tmp_path / "b.txt"
    b.write_text("zyzzyva " * 500, encoding="utf-8")
    tok = train_bpe([a, b], vocab_size=600)
    assert tok.encode(" zyzzyva") == [tok.token_to_id("Ġzyzzyva")]


def test_vocab_smaller_than_bytes_and_specials_names_both_numbers(corpus: Path) -> None:
    with pytest.raises(ValueError, match=rf"vocab_size 100 .* need {MIN_VOCAB_SIZE}"):
        train_bpe([corpus], vocab_size=100)


def test_non_utf8_file_names_file_and_offset(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"ok text, then caf" + "é".encode("latin-1") + b" more")
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8: byte 0xe9 at byte offset 17"):
        train_bpe([bad], vocab_size=300)


def test_missing_file_raises_file_not_found(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        train_bpe([corpus, tmp_path / "nope.txt"], vocab_size=300)


def test_no_files_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        train_bpe([], vocab_size=300)
