"""Our two text tokenizers, both written as Hugging Face `tokenizer.json`: bytes, and byte-level BPE.

Both share one layout (see `special.py`): ids 0..255 are raw bytes in byte order, merges follow, the
reserved special tokens come last. The byte tokenizer is a BPE model with zero merges and no regex
split, so it is the same `Tokenizer` class and file format as the trained one, for baselines that are
comparable with character-level models. Neither has a normalizer, so decode(encode(s)) == s exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from alltokens.data.text_files import read_text_file
from alltokens.tokenizers.byte_level import BYTE_TO_CHAR
from alltokens.tokenizers.special import SPECIAL_TOKENS
from alltokens.tokenizers.text import Tokenizer

MIN_VOCAB_SIZE = len(BYTE_TO_CHAR) + len(SPECIAL_TOKENS)


def byte_tokenizer() -> Tokenizer:
    """256 byte ids (id == byte value) followed by the special tokens."""
    vocab = {c: b for b, c in enumerate(BYTE_TO_CHAR)}
    return _with_specials(tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[])), use_regex=False)


def train_bpe(
    files: Sequence[str | Path] | str | Path, vocab_size: int = 4096, min_frequency: int = 2
) -> Tokenizer:
    """Train a byte-level BPE on UTF-8 text files with the `tokenizers` library.

    `vocab_size` counts bytes, merges and special tokens; a small corpus may stop with fewer merges.
    Pairs seen fewer than `min_frequency` times are never merged. Text is split with GPT-2's regex
    first, so merges never cross a word/space/punctuation boundary.
    """
    paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
    if not paths:
        raise ValueError("train_bpe needs at least one text file")
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size {vocab_size} is too small: the {len(BYTE_TO_CHAR)} byte tokens and "
            f"{len(SPECIAL_TOKENS)} special tokens alone need {MIN_VOCAB_SIZE}"
        )
    for path in paths:
        read_text_file(path)  # fail early, naming the file and offset, on missing or non-UTF-8 input
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        min_frequency=min_frequency,
        initial_alphabet=list(BYTE_TO_CHAR),
        show_progress=False,
    )
    hf.train([str(p) for p in paths], trainer)
    return _with_specials(_bytes_first(hf), use_regex=True)


def _bytes_first(trained: tokenizers.Tokenizer) -> tokenizers.Tokenizer:
    """Renumber a trained BPE so ids 0..255 are bytes in byte order, then merges in learned order.

    The trainer numbers its alphabet by code point of the stand-in characters, which scrambles bytes;
    segmentation depends only on the merge list, so renumbering changes no tokenization.
    """
    model = json.loads(trained.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    vocab: dict[str, int] = {}
    for token in chain(BYTE_TO_CHAR, (a + b for a, b in merges)):
        vocab.setdefault(token, len(vocab))  # two merges can spell the same token ("a"+"bc", "ab"+"c")
    return tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges))


def _with_specials(hf: tokenizers.Tokenizer, use_regex: bool) -> Tokenizer:
    """Add the byte-level pre-tokenizer and decoder and the special tokens (last ids).

    There is no post-processor: `encode(text, add_special_tokens=True)` adds nothing, so a prompt
    encodes exactly as the same text did inside the training stream (documents are joined by eos).
    """
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(list(SPECIAL_TOKENS))
    return Tokenizer(hf)
