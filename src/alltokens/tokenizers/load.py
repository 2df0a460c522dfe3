"""`load_tokenizer`: 'bytes', a directory holding `tokenizer.json`, or a `tokenizer.json` path.

Foreign directories (Hugging Face models) name their bos/eos/pad tokens in `tokenizer_config.json` or
`special_tokens_map.json`, as a string or as a dict with "content"; an explicit null means "none".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tokenizers

from alltokens.tokenizers.special import ROLES
from alltokens.tokenizers.text import TOKENIZER_CONFIG, TOKENIZER_FILE, Tokenizer

SPECIAL_TOKENS_MAP = "special_tokens_map.json"
HINT = "pass a directory holding tokenizer.json, a tokenizer.json file, or 'bytes'"


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load the byte tokenizer ('bytes') or any Hugging Face `tokenizer.json`."""
    if str(path) == "bytes":
        from alltokens.tokenizers.bpe import byte_tokenizer

        return byte_tokenizer()
    path = Path(path)
    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not file.is_file():
        where = f"no {TOKENIZER_FILE} in {path}" if path.is_dir() else f"tokenizer not found: {path}"
        raise FileNotFoundError(f"{where} ({HINT})")
    try:
        hf = tokenizers.Tokenizer.from_file(str(file))
    except Exception as e:  # the Rust side raises a bare Exception for any parse error
        raise ValueError(f"{file} is not a valid tokenizer.json: {e}") from None
    special = _named_special_tokens(file.parent)
    try:
        return Tokenizer(hf, special)
    except ValueError as e:
        raise ValueError(
            f"{file.parent}: {e} (named in {TOKENIZER_CONFIG} or {SPECIAL_TOKENS_MAP})"
        ) from None


def _named_special_tokens(directory: Path) -> dict[str, str | None]:
    """bos/eos/pad as named by the directory's config files; `tokenizer_config.json` wins."""
    named: dict[str, str | None] = {}
    for name in (TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP):
        file = directory / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{file} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{file} must hold a JSON object")
        for role in ROLES:
            key = f"{role}_token"
            if key in data and role not in named:
                named[role] = _token_content(data[key], file, key)
    return named


def _token_content(value: Any, file: Path, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    raise ValueError(f"{file}: {key} must be a string, null, or an object with 'content', got {value!r}")
