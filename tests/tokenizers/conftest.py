"""A small multilingual corpus and the BPE tokenizer trained on it, shared by the tokenizer tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from alltokens.tokenizers import Tokenizer, byte_tokenizer, train_bpe

VOCABULARY = (
    "the quick brown fox jumps over lazy dog tokens transformer attention model train "
    "café naïve über straße ĉu 日本語 тест données 😀 🚀 def return self x = 1 + 2 ( ) : , ."
)
WORDS = [*VOCABULARY.split(), "\n"]


def write_corpus(path: Path, n_words: int = 6000, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text(" ".join(rng.choice(WORDS) for _ in range(n_words)), encoding="utf-8")
    return path


@pytest.fixture(name="write_corpus")
def write_corpus_fixture():
    """`write_corpus(path, n_words=6000, seed=0)` for tests that need a corpus of their own."""
    return write_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="session")
def bpe(corpus: Path) -> Tokenizer:
    return train_bpe([corpus], vocab_size=400)


@pytest.fixture(params=["bytes", "bpe"])
def tok(request: pytest.FixtureRequest, bpe: Tokenizer) -> Tokenizer:
    """Each of our two tokenizers in turn: whatever holds for one must hold for the other."""
    return byte_tokenizer() if request.param == "bytes" else bpe
