"""Reading the UTF-8 text files that tokenizers and language models train on.

A corpus with a stray Latin-1 or binary byte should fail loudly at the start, naming the file and the
byte offset, instead of silently becoming U+FFFD characters the model then learns.
"""

from __future__ import annotations

from pathlib import Path


def read_text_file(path: str | Path) -> str:
    """Return the text of a UTF-8 file; a bad byte raises ValueError with the file and byte offset."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a text file, got a directory: {path}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not UTF-8: byte 0x{data[e.start]:02x} at byte offset {e.start} ({e.reason})"
        ) from None
