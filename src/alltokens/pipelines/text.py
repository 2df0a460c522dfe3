"""`TextModel`: a language model with its tokenizer, taking and giving text.

`generate` and `stream` share one path (ids engine -> `TextStream` per row), so the streamed pieces
always join to exactly what `generate` returns. The default temperature is 0.8, the common choice
for open-ended text (plain sampling at 1.0 wanders, greedy repeats itself); pass `temperature=0` for
greedy, reproducible output. Prompts are encoded with the tokenizer's own special tokens (a Llama
tokenizer adds `<s>`; ours add nothing), an empty prompt starts from the bos token, and a row ends at
the tokenizer's eos token, at a stop string, or after `max_new_tokens`.

The model is made inference-only on the way in (`nn.inference.optimize_for_inference`: packed CPU
weights for fast decoding), so it no longer computes gradients; train a separately loaded copy.

Shape notation: N texts, T tokens, C width.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from alltokens.generate.engine import (
    check_context,
    generate_ids,
    left_pad,
    model_device,
    padding_inputs,
)
from alltokens.generate.sampling import SamplingSettings
from alltokens.generate.text import TextStream
from alltokens.nn.inference import optimize_for_inference


class TextModel:
    def __init__(self, model: nn.Module, tokenizer: Any):
        self.model = optimize_for_inference(model)  # in place; CPU decoding ~2x faster, no gradients
        self.tokenizer = tokenizer
        self.cfg = model.cfg

    def encode(self, text: str) -> list[int]:
        """Prompt ids, with the tokenizer's special tokens; "" becomes [bos]."""
        ids = self.tokenizer.encode(text, add_special_tokens=True)
        if not ids:
            bos = self.tokenizer.bos_id if self.tokenizer.bos_id is not None else self.cfg.bos_token_id
            if bos is None:
                raise ValueError("the prompt is empty and the tokenizer has no bos token to start from")
            ids = [bos]
        return ids

    def generate(
        self,
        prompt: str | Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
    ) -> str | list[str]:
        """The completion of one prompt (str), or of each of a list of prompts, decoded as one batch."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        texts = [""] * len(prompts)
        settings = SamplingSettings(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
        )
        for row, piece in self._pieces(prompts, settings, max_new_tokens, stop):
            texts[row] += piece
        return texts[0] if isinstance(prompt, str) else texts

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 64,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """The completion of one prompt, piece by piece as it is generated; same arguments as `generate`."""
        if not isinstance(prompt, str):
            raise ValueError(f"stream takes one prompt string, got {type(prompt).__name__}")
        settings = SamplingSettings(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
        )
        return (piece for _, piece in self._pieces([prompt], settings, max_new_tokens, stop))

    def _pieces(
        self,
        prompts: list[str],
        settings: SamplingSettings,
        max_new_tokens: int,
        stop: str | Sequence[str] | None,
    ) -> Iterator[tuple[int, str]]:
        """(row, text piece) pairs as the batch decodes. Bad arguments raise here, not at the first step."""
        ids = [self.encode(p) for p in prompts]
        rows = [TextStream(self.tokenizer, p, stop) for p in ids]
        eos = self.tokenizer.eos_id if self.tokenizer.eos_id is not None else self.cfg.eos_token_id
        steps = generate_ids(self.model, ids, settings, max_new_tokens, eos_id=eos)
        return text_pieces(steps, rows, eos)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length text embeddings (N, C): final hidden states averaged over each text's tokens."""
        if isinstance(texts, str) or not texts:
            raise ValueError(f"embed takes a non-empty list of texts, got {texts!r}")
        ids, valid = left_pad([self.encode(t) for t in texts], model_device(self.model))  # (N, T)
        check_context(self.model, ids.shape[1], 0)
        positions, mask = padding_inputs(valid)
        with torch.no_grad():
            h = self.model.hidden(ids, positions, mask).float()  # (N, T, C)
        weights = valid[..., None].float()  # (N, T, 1)
        mean = (h * weights).sum(1) / weights.sum(1)  # (N, C)
        return F.normalize(mean, dim=-1)


def text_pieces(
    steps: Generator[torch.Tensor, None, None], rows: list[TextStream], eos: int | None
) -> Iterator[tuple[int, str]]:
    """Feed each step's ids (B,) to the rows' text streams; yield (row, non-empty piece)."""
    open_rows = set(range(len(rows)))
    for next_ids in steps:
        for row, token in enumerate(next_ids.tolist()):
            if row not in open_rows:
                continue
            if token == eos:
                piece = rows[row].finish()
                open_rows.discard(row)
            else:
                piece = rows[row].push(token)
                if rows[row].stopped:
                    open_rows.discard(row)
            if piece:
                yield row, piece
        if not open_rows:
            steps.close()  # every row hit a stop string or eos: no more model calls
            return
    for row in sorted(open_rows):  # out of tokens
        piece = rows[row].finish()
        if piece:
            yield row, piece
