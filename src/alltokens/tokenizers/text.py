"""One text tokenizer interface over any Hugging Face `tokenizer.json`.

Our byte tokenizer, our trained byte-level BPE, GPT-2's BPE, Llama's Metaspace/byte-fallback BPE and
BERT's WordPiece are all `tokenizer.json` files, so one class wrapping `tokenizers.Tokenizer` serves
them all: models see ids and never care which tokenizer made them, and a run directory always holds a
`tokenizer.json` (plus a small `tokenizer_config.json` naming bos/eos/pad, so Hugging Face's
`AutoTokenizer` reads our directories too).

Tokenizers differ in which token plays bos, eos and pad. They are resolved once, here: named
explicitly (from a directory's `tokenizer_config.json`, see `load.py`), else the first known name
present in the vocabulary (`special.FALLBACK_NAMES`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import tokenizers
import torch
from tokenizers import decoders

from alltokens.io.checkpoint import atomic_write, write_json
from alltokens.tokenizers.byte_level import CHAR_TO_BYTE
from alltokens.tokenizers.special import FALLBACK_NAMES, ROLES

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
METASPACE = "▁"  # SentencePiece's stand-in for a space (Llama, T5)


class Tokenizer:
    """Text <-> ids through a `tokenizers.Tokenizer`, with bos/eos/pad resolved.

    `special` maps a role ('bos', 'eos', 'pad') to its token string, or to None for "this tokenizer
    has none"; roles left out are looked up by their usual names. `hf` is the wrapped
    `tokenizers.Tokenizer`, for whatever this interface does not cover (e.g. `encode_batch_fast`).
    """

    def __init__(self, hf: tokenizers.Tokenizer, special: Mapping[str, str | None] | None = None) -> None:
        special = dict(special or {})
        if unknown := set(special) - set(ROLES):
            raise ValueError(f"unknown special-token roles {sorted(unknown)}; expected some of {ROLES}")
        self.hf = hf
        # a saved tokenizer.json may pin padding/truncation (MiniLM's: fixed 128); callers pad and cut
        hf.no_padding()
        hf.no_truncation()
        vocab = hf.get_vocab(with_added_tokens=True)
        # max id + 1, not len(vocab): a vocabulary with holes still needs an embedding row per id
        self.vocab_size: int = max(vocab.values(), default=-1) + 1
        self.special_tokens: dict[str, str | None] = {}
        for role in ROLES:
            if role in special:
                token = special[role]
                if token is not None and token not in vocab:
                    raise ValueError(f"{role} token {token!r} is not in the tokenizer's vocabulary")
            else:
                token = next((t for t in FALLBACK_NAMES[role] if t in vocab), None)
            self.special_tokens[role] = token
        role_ids = {role: None if t is None else vocab[t] for role, t in self.special_tokens.items()}
        self.bos_id: int | None = role_ids["bos"]
        self.eos_id: int | None = role_ids["eos"]
        self.pad_id: int | None = role_ids["pad"]
        added = hf.get_added_tokens_decoder()  # {id: AddedToken}
        self._added: dict[int, str] = {i: t.content for i, t in added.items()}
        self.special_ids: frozenset[int] = frozenset(
            [i for i, t in added.items() if t.special] + [i for i in role_ids.values() if i is not None]
        )
        self._byte_level = isinstance(hf.decoder, decoders.ByteLevel)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, bos={self.bos_id}, eos={self.eos_id}, pad={self.pad_id})"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Ids of `text`. Special-token strings in it become their single ids; `add_special_tokens`
        applies the tokenizer's post-processor (our `<|bos|>`, Llama's `<s>`, BERT's [CLS] ... [SEP])."""
        return self.hf.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        """Text of `ids`; byte runs that are not valid UTF-8 become U+FFFD."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(
                    f"decode takes a 1-D sequence of ids, got a tensor of shape {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        ids = list(ids)
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            bad = next(i for i in ids if not 0 <= i < self.vocab_size)
            raise ValueError(f"token id {bad} is outside the vocabulary (0..{self.vocab_size - 1})")
        return self.hf.decode(ids, skip_special_tokens=skip_special_tokens)

    def encode_batch(
        self, texts: Sequence[str], add_special_tokens: bool = False, padding_side: str = "left"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode several texts into one padded batch: (ids (B, T) int64, attention_mask (B, T) bool).

        Left padding (the default) lines up the last tokens, which is what batched generation with a
        shared KV-cache length needs. Pad slots hold `pad_id`, else `eos_id`, else 0; the mask is False
        there, so the value never matters.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if isinstance(texts, str):
            raise ValueError("encode_batch takes a list of texts; use encode for a single string")
        rows = [e.ids for e in self.hf.encode_batch(list(texts), add_special_tokens=add_special_tokens)]
        B, T = len(rows), max(map(len, rows), default=0)
        pad = next((i for i in (self.pad_id, self.eos_id) if i is not None), 0)
        ids = torch.full((B, T), pad, dtype=torch.long)  # (B, T)
        mask = torch.zeros((B, T), dtype=torch.bool)  # (B, T)
        for b, row in enumerate(rows):
            cols = slice(T - len(row), T) if padding_side == "left" else slice(0, len(row))
            ids[b, cols] = torch.tensor(row, dtype=torch.long)
            mask[b, cols] = True
        return ids, mask

    def token_to_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token)

    def id_to_token(self, i: int) -> str:
        """The vocabulary entry for id `i`, as stored (byte-level entries use GPT-2's stand-in characters)."""
        token = self.hf.id_to_token(i)
        if token is None:
            raise ValueError(f"token id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
        return token

    def pieces(self, text: str) -> list[tuple[str, int]]:
        """Each token of `text` as (its own text, its id), for showing where the boundaries fall.

        Byte-level tokens are shown as the bytes they stand for; a token that ends inside a multi-byte
        character shows its loose bytes as `\\xe2`-style escapes. SentencePiece's `▁` is shown as a space.
        """
        return [(self._piece(i), i) for i in self.encode(text)]

    def _piece(self, i: int) -> str:
        if i in self._added:
            return self._added[i]
        token = self.id_to_token(i)
        if self._byte_level and all(c in CHAR_TO_BYTE for c in token):
            return bytes(CHAR_TO_BYTE[c] for c in token).decode("utf-8", errors="backslashreplace")
        return token.replace(METASPACE, " ")

    def save(self, directory: str | Path) -> None:
        """Write `tokenizer.json` and a `tokenizer_config.json` naming bos/eos/pad (both atomically)."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"cannot save a tokenizer into {directory}: it is a file, not a directory")
        atomic_write(directory / TOKENIZER_FILE, lambda p: self.hf.save(str(p)))
        config = {f"{role}_token": token for role, token in self.special_tokens.items()}
        # clean_up_tokenization_spaces=False: Hugging Face's decode must not rewrite " ." to "." either
        write_json(
            directory / TOKENIZER_CONFIG,
            {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False, **config},
        )


_SHOWN = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def visible(piece: str) -> str:
    """A token's text with whitespace and control characters made visible, for printing boundaries."""
    return "".join(
        _SHOWN.get(c, c if c.isprintable() else c.encode("unicode_escape").decode("ascii")) for c in piece
    )
