"""A stand-in model that plays back fixed ids, for testing what sits on the engine without weights.

The text layer, the pipelines and (later) the server care about what happens to ids once the model
picked them: multi-byte characters split across tokens, stop strings, end of sequence, batching.
`ScriptedModel` makes those cases exact: row b's i-th generated id is `scripts[b][i]`, whatever the
prompt; past the end of its script a row repeats the script's last id (usually eos). It records every
call, so tests can also check what the engine fed in.

Shape notation: B batch, T tokens, S key slots, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ScriptedConfig:
    """The fields of `LMConfig` that the engine and `TextModel` read."""

    vocab_size: int
    max_position_embeddings: int = 1024
    bos_token_id: int | None = None
    eos_token_id: int | None = None


@dataclass
class ScriptCursor:
    """Stands where a KV cache would: how many steps the scripts have advanced."""

    step: int = 0


@dataclass
class Call:
    ids: torch.Tensor  # (B, T)
    positions: torch.Tensor | None  # (B, T)
    mask: torch.Tensor | None  # (B, 1, T, S)


class ScriptedModel(nn.Module):
    def __init__(
        self, scripts: Sequence[Sequence[int]], vocab_size: int, max_position_embeddings: int = 1024
    ):
        super().__init__()
        self.cfg = ScriptedConfig(vocab_size, max_position_embeddings)
        self.scripts = [list(s) for s in scripts]
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device
        self.calls: list[Call] = []

    def new_cache(self, batch_size: int, max_len: int) -> ScriptCursor:
        if batch_size != len(self.scripts):
            raise ValueError(f"ScriptedModel has {len(self.scripts)} script(s), not {batch_size}")
        return ScriptCursor()

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: ScriptCursor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits (B, 1, V): 0 everywhere except a large value at each row's next scripted id."""
        if cache is None or not last_only:
            raise ValueError("ScriptedModel only decodes: call it with a cache and last_only=True")
        self.calls.append(Call(ids, positions, mask))
        step, cache.step = cache.step, cache.step + 1
        next_ids = [s[min(step, len(s) - 1)] for s in self.scripts]
        logits = torch.zeros(len(next_ids), self.cfg.vocab_size, device=ids.device)  # (B, V)
        logits[range(len(next_ids)), next_ids] = 100.0
        return logits[:, None]  # (B, 1, V)
