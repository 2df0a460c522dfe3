"""`alltokens tokenizer train | encode | decode`, called through `cli.main` as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from alltokens.cli import main
from alltokens.tokenizers import load_tokenizer


def test_train_then_encode_then_decode(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "400", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    tok = load_tokenizer(out)

    text = " the lazy dog\n"
    assert main(["tokenizer", "encode", "--tokenizer", str(out), text]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = tok.encode(text)
    shown = [(p.replace(" ", "␣").replace("\n", "\\n"), i) for p, i in tok.pieces(text)]
    assert lines[0] == "".join(f"[{p}:{i}]" for p, i in shown)
    assert lines[0].startswith(f"[␣the:{tok.token_to_id('Ġthe')}]") and lines[0].endswith("[\\n:10]")
    assert "".join(p for p, _ in shown) == "␣the␣lazy␣dog\\n"
    assert lines[1] == f"{len(ids)} tokens"

    assert main(["tokenizer", "decode", "--tokenizer", str(out), *map(str, ids)]) == 0
    assert capsys.readouterr().out == text + "\n"


def test_byte_tokenizer_by_name(capsys: pytest.CaptureFixture) -> None:
    assert main(["tokenizer", "encode", "--tokenizer", "bytes", "Hi é"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "[H:72][i:105][␣:32][\\xc3:195][\\xa9:169]"
    assert main(["tokenizer", "decode", "--tokenizer", "bytes", "72", "105", "256"]) == 0
    assert capsys.readouterr().out == "Hi<|bos|>\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tokenizer", "decode", "--tokenizer", "bytes", "999"], "token id 999 is outside the vocabulary"),
        (["tokenizer", "encode", "--tokenizer", "no/such/dir", "x"], "tokenizer not found: no/such/dir"),
        (["tokenizer", "train", "--input", "missing.txt", "--out", "x"], "missing.txt"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_train_rejects_tiny_vocab(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["tokenizer", "train", "--input", str(corpus), "--vocab-size", "10", "--out", str(tmp_path / "t")]
    assert main(argv) == 2
    assert "vocab_size 10 is too small" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
