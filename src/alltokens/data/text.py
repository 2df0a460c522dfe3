"""Text as one token stream: tokenised once, held in memory, sampled as random windows.

The files are read as strict UTF-8 (`read_text_file` names the file and byte offset of a bad byte),
tokenised in line-aligned chunks of a few kilobytes (the Rust tokenizer encodes a batch in parallel,
and short rows keep the padding small), and joined with `eos` between files. The stream is stored as
uint16 when the vocabulary fits (half the memory of int32, a quarter of int64).

Training windows are drawn at random positions, nanoGPT-style. Batch `i` depends only on
(seed, rank, i), so resuming at batch `i` replays the same data with no generator state to save, and
each rank of a distributed run samples its own contiguous shard of the stream.

Shape notation: B batch, T block size (tokens predicted per window); a window holds T + 1 tokens.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from alltokens.data.text_files import read_text_file
from alltokens.tokenizers import Tokenizer

CHUNK_CHARS = 4096  # characters per encoded row
# Rows per encode_batch call. The Rust tokenizer keeps strings and offsets for every token of a batch:
# 256 rows (1 MB of text) raised peak RSS by 174 MB, 32 rows by 57 MB, at the same speed.
ROWS_PER_BATCH = 32


def line_chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split `text` after newlines into pieces of about `size` characters; they join back to `text`."""
    chunks, current, n = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        n += len(line)
        if n >= size:
            chunks.append("".join(current))
            current, n = [], 0
    if current:
        chunks.append("".join(current))
    return chunks


def encode_text(text: str, tokenizer: Tokenizer) -> torch.Tensor:
    """The ids of `text` as a 1-D int64 tensor, encoded chunk by chunk in parallel batches."""
    chunks = line_chunks(text)
    parts = []
    for i in range(0, len(chunks), ROWS_PER_BATCH):
        ids, mask = tokenizer.encode_batch(chunks[i : i + ROWS_PER_BATCH])  # (R, L), (R, L)
        parts.append(ids[mask])  # row-major: the rows' tokens in order, padding dropped
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def tokenize_files(paths: Sequence[str | Path], tokenizer: Tokenizer) -> torch.Tensor:
    """All files as one 1-D stream (uint16 if the vocabulary fits, else int32), `eos` after each file."""
    if not paths:
        raise ValueError("no data files given")
    parts = []
    for path in paths:
        parts.append(encode_text(read_text_file(path), tokenizer))
        if tokenizer.eos_id is not None:
            parts.append(torch.tensor([tokenizer.eos_id]))
    dtype = torch.uint16 if tokenizer.vocab_size <= 2**16 else torch.int32
    return torch.cat(parts).to(dtype)


def split_tokens(tokens: torch.Tensor, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation): the validation set is the last `val_fraction` of the stream."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    n_val = int(len(tokens) * val_fraction)
    return tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]


def batch_seed(seed: int, rank: int, index: int) -> int:
    """A 64-bit seed for batch `index` of `rank`, stable across Python and torch versions."""
    digest = hashlib.blake2b(f"{seed}:{rank}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class WindowBatches:
    """Iterable of `{"ids": (B, T + 1) int64}` windows at random positions of a token stream.

    With `world_size` > 1 the stream is cut into equal contiguous shards and this rank samples only
    its own. Iterating starts at batch `position` (0 unless `seek` moved it), so a validation set built
    from this class yields the same batches at every evaluation.
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        batch_size: int,
        block_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        name: str = "data",
    ):
        shard = len(tokens) // world_size
        self.tokens = tokens[rank * shard : (rank + 1) * shard]
        if len(self.tokens) < block_size + 1:
            where = f"each of {world_size} shards" if world_size > 1 else "it"
            raise ValueError(
                f"the {name} holds {len(tokens)} tokens, too few for windows of block_size + 1 = "
                f"{block_size + 1} tokens ({where} needs at least that many); use more text or a "
                f"smaller block size"
            )
        self.batch_size, self.block_size = batch_size, block_size
        self.seed, self.rank = seed, rank
        self.offsets = torch.arange(block_size + 1)  # (T+1,)
        self.position = 0

    def seek(self, index: int) -> None:
        """Make the next iteration start at batch `index` (exact resume)."""
        self.position = index

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(batch_seed(self.seed, self.rank, index))
        starts = torch.randint(0, len(self.tokens) - self.block_size, (self.batch_size,), generator=g)  # (B,)
        ids = self.tokens[starts[:, None] + self.offsets]  # (B, T+1)
        return {"ids": ids.long()}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return (self.batch(i) for i in itertools.count(self.position))
