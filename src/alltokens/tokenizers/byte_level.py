"""GPT-2's byte <-> printable-character table, which byte-level BPE `tokenizer.json` files are written in.

Byte-level BPE works on bytes but stores its vocabulary as text, so every byte gets a printable
stand-in character: printable Latin-1 bytes stand for themselves, the other 68 (controls, space,
soft hyphen...) are shifted to U+0100 onwards in byte order. `tokenizers`' ByteLevel pre-tokenizer and
decoder use exactly this table (openai/gpt-2 `encoder.py: bytes_to_unicode`).
"""

from __future__ import annotations


def _byte_to_char() -> tuple[str, ...]:
    printable = {
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    }
    chars, shifted = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + shifted))
            shifted += 1
    return tuple(chars)


BYTE_TO_CHAR: tuple[str, ...] = _byte_to_char()
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in enumerate(BYTE_TO_CHAR)}
