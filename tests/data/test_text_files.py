"""`read_text_file`: UTF-8 or a clear error naming the file and the first bad byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from alltokens.data.text_files import read_text_file


def test_reads_utf8_exactly(tmp_path: Path) -> None:
    text = "line one\r\nnaïve 日本語 😀\n"
    (tmp_path / "a.txt").write_bytes(text.encode("utf-8"))
    assert read_text_file(tmp_path / "a.txt") == text


@pytest.mark.parametrize(
    ("data", "offset", "byte"),
    [(b"\xff rest", 0, "0xff"), ("abc é".encode() + b"\xe2\x82", 6, "0xe2"), (b"ok \xc3(", 3, "0xc3")],
)
def test_bad_byte_is_named_with_its_offset(tmp_path: Path, data: bytes, offset: int, byte: str) -> None:
    (tmp_path / "bad.txt").write_bytes(data)
    with pytest.raises(ValueError, match=rf"bad\.txt is not UTF-8: byte {byte} at byte offset {offset}\b"):
        read_text_file(tmp_path / "bad.txt")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gone.txt"):
        read_text_file(tmp_path / "gone.txt")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="got a directory"):
        read_text_file(tmp_path)
