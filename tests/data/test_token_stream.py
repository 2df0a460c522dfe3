"""The token stream: files -> one id tensor -> train/val split -> reproducible random windows."""

from __future__ import annotations

import pytest
import torch

from alltokens.data.text import WindowBatches, encode_text, line_chunks, split_tokens, tokenize_files
from alltokens.tokenizers import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("bytes")


def test_line_chunks_join_back_and_stay_small():
    text = "".join(f"line {i}\n" for i in range(2000)) + "no newline at the end"
    chunks = line_chunks(text, size=100)
    assert "".join(chunks) == text
    assert all(len(c) < 120 for c in chunks)


def test_encode_text_equals_one_call_encoding(tok):
    text = "héllo wörld\n" * 1000 + "🐍 tail"
    assert encode_text(text, tok).tolist() == tok.encode(text)


def test_files_are_joined_with_eos_in_a_compact_dtype(tmp_path, tok):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("ab")
    b.write_text("c")
    tokens = tokenize_files([a, b], tok)
    assert tokens.dtype == torch.uint16
    assert tokens.tolist() == [*tok.encode("ab"), tok.eos_id, *tok.encode("c"), tok.eos_id]


def test_non_utf8_file_is_an_error_naming_file_and_offset(tmp_path, tok):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    with pytest.raises(ValueError, match=r"latin1\.txt.*byte offset 3"):
        tokenize_files([bad], tok)


def test_missing_file_and_no_files_are_errors(tmp_path, tok):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        tokenize_files([tmp_path / "missing.txt"], tok)
    with pytest.raises(ValueError, match="no data files"):
        tokenize_files([], tok)


def test_split_holds_out_the_end():
    tokens = torch.arange(100)
    train, val = split_tokens(tokens, 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    with pytest.raises(ValueError, match="val_fraction"):
        split_tokens(tokens, 1.5)


def test_windows_are_contiguous_slices_of_the_stream():
    tokens = torch.arange(1000, dtype=torch.int32)
    batch = WindowBatches(tokens, batch_size=6, block_size=16, seed=0).batch(0)["ids"]
    assert batch.shape == (6, 17) and batch.dtype == torch.long
    assert torch.equal(batch - batch[:, :1], torch.arange(17).expand(6, 17))
    assert batch.max() < 1000


def test_batch_depends_only_on_seed_and_index():
    tokens = torch.arange(10_000)
    a = WindowBatches(tokens, 4, 8, seed=3)
    b = WindowBatches(tokens, 4, 8, seed=3)
    first = [x["ids"] for _, x in zip(range(5), a)]
    b.seek(3)
    resumed = [x["ids"] for _, x in zip(range(2), b)]
    assert torch.equal(resumed[0], first[3]) and torch.equal(resumed[1], first[4])
    assert not torch.equal(first[0], first[1])
    other_seed = next(iter(WindowBatches(tokens, 4, 8, seed=4)))["ids"]
    assert not torch.equal(other_seed, first[0])
    again = [x["ids"] for _, x in zip(range(2), a)]  # a fresh iteration starts over (validation)
    assert torch.equal(again[0], first[0])


def test_each_rank_samples_its_own_shard():
    tokens = torch.arange(1000)
    shards = [WindowBatches(tokens, 64, 10, seed=0, rank=r, world_size=2) for r in range(2)]
    seen = [torch.cat([s.batch(i)["ids"].flatten() for i in range(5)]) for s in shards]
    assert seen[0].max() < 500 <= seen[1].min()


def test_too_little_data_for_a_window_is_an_error():
    with pytest.raises(ValueError, match="validation data holds 10 tokens.*block_size"):
        WindowBatches(torch.arange(10), 2, 16, seed=0, name="validation data")
    with pytest.raises(ValueError, match="each of 4 shards"):
        WindowBatches(torch.arange(40), 2, 16, seed=0, world_size=4)
