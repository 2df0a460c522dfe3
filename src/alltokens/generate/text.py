"""The thin text layer over the id engine: incremental detokenisation and stop strings.

Detokenising one token at a time is wrong twice over: a byte-level token can hold half of a UTF-8
character (an emoji is four byte tokens), and some tokenizers decode a token differently at the start
of a text (SentencePiece drops the leading space of "▁Once"). `Detokenizer` follows vLLM: it decodes a
short window of ids that starts a few tokens back (so each token is decoded in context), subtracts the
window's already-emitted prefix, and holds text back while it ends in U+FFFD, which is how an
incomplete UTF-8 sequence decodes. A U+FFFD that is still there at the end is real and is emitted by
`flush`.

`TextStream` adds stop strings on top: generation stops as soon as one appears, the text returned
excludes it, and no piece is handed out that might turn out to be the start of a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REPLACEMENT = "\ufffd"
CONTEXT_TOKENS = 6  # prompt ids decoded with the first new tokens, so they decode in context


class Detokenizer:
    """Turns ids pushed one at a time into text pieces whose concatenation is the decoded text."""

    def __init__(self, tokenizer: Any, context: Sequence[int] = ()):
        self.tokenizer = tokenizer
        self.ids = list(context[-CONTEXT_TOKENS:]) if context else []
        self.prefix = 0  # ids[prefix:read] decode to text already emitted (or belonging to the context)
        self.read = len(self.ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add one id; return the text it completes ("" while a character is still incomplete)."""
        self.ids.append(token_id)
        done = self._decode(self.ids[self.prefix : self.read])
        text = self._decode(self.ids[self.prefix :])
        if len(text) <= len(done) or text.endswith(REPLACEMENT):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return text[len(done) :]

    def flush(self) -> str:
        """The text still held back, U+FFFD included: nothing more is coming to complete it."""
        done = self._decode(self.ids[self.prefix : self.read])
        text = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return text[len(done) :]


def check_stop(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    """None, one string or several -> a tuple of non-empty stop strings."""
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    for s in stops:
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop strings must be non-empty strings, got {s!r}")
    return stops


def held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that is the start of a stop string (and so may become one)."""
    longest = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


class TextStream:
    """One row of generation as text: push ids, get the pieces that are safe to show.

    `stopped` turns True when a stop string appeared; `text` is then the completion without it.
    """

    def __init__(self, tokenizer: Any, context: Sequence[int] = (), stop: str | Sequence[str] | None = None):
        self.detokenizer = Detokenizer(tokenizer, context)
        self.stops = check_stop(stop)
        self.longest_stop = max((len(s) for s in self.stops), default=0)
        self.text = ""
        self.sent = 0  # characters of `text` handed out so far
        self.stopped = False

    def push(self, token_id: int) -> str:
        if self.stopped:
            return ""
        return self._extend(self.detokenizer.push(token_id))

    def finish(self) -> str:
        """The last piece once generation ended (end of sequence, or out of tokens)."""
        if self.stopped:
            return ""
        piece = self._extend(self.detokenizer.flush())
        rest = self.text[self.sent :]
        self.sent = len(self.text)
        return piece + rest

    def _extend(self, new: str) -> str:
        if not new:
            return ""
        search_from = max(0, len(self.text) - self.longest_stop + 1)  # a stop may straddle old and new
        self.text += new
        hits = [i for s in self.stops if (i := self.text.find(s, search_from)) >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True
            end = len(self.text)
        else:
            end = max(self.sent, len(self.text) - held_back(self.text, self.stops))
        piece = self.text[self.sent : end]
        self.sent = end
        return piece
