"""Choosing the next token from logits: a pure function over tensors, no model, no text.

`sample` runs the logits through a fixed pipeline of processors, in the order Hugging Face
`generate` applies them, then draws one id per row:

1. allowed ids: ids outside a mask get -inf (modality-constrained decoding: only image codes inside
   an image, only text after `<|image_end|>`...);
2. repetition penalty (CTRL, Keskar et al. 2019, with HF semantics): for every id already in the row
   (prompt and generated), a positive logit is divided by the penalty and a negative one multiplied;
3. temperature: logits / T; T == 0 means greedy (argmax) and skips the rest;
4. top-k: keep the k largest logits (ties with the k-th are kept too);
5. top-p (nucleus, Holtzman et al. 2019): keep the smallest set of most likely ids whose total
   probability reaches p;
6. min-p (Nguyen et al. 2024): drop ids whose probability is below min_p times the top probability.

The draw uses the exponential-race form of categorical sampling, argmax(p / E) with E ~ Exp(1), which
picks id i with probability p_i exactly and, unlike `torch.multinomial`, never waits on the GPU.

Shape notation: B batch, V vocabulary, N ids seen so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alltokens.nn.config import Config


@dataclass
class SamplingSettings(Config):
    """How to pick each next token. The defaults sample from the model's plain distribution."""

    temperature: float = 1.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    min_p: float = 0.0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off; > 1 discourages repeats
    seed: int | None = None  # None = torch's global generator

    def __post_init__(self) -> None:
        # `not (x >= 0)` style comparisons also reject NaN
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def check_max_new_tokens(max_new_tokens: int) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens}")


def make_generator(settings: SamplingSettings, device: torch.device) -> torch.Generator | None:
    """A generator seeded from `settings.seed`, or None for torch's global one."""
    if settings.seed is None:
        return None
    return torch.Generator(device=device).manual_seed(settings.seed)


def apply_repetition_penalty(
    logits: torch.Tensor, previous_ids: torch.Tensor, penalty: float
) -> torch.Tensor:
    """logits (B, V), previous_ids (B, N) -> logits with every seen id penalised once."""
    seen = logits.gather(1, previous_ids)  # (B, N)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, previous_ids, seen)  # a repeated id gets the same value twice


def apply_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, -math.inf)


def apply_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(-1)
    mass_before = probs.cumsum(-1) - probs  # (B, V) probability of the more likely ids
    drop = mass_before >= p  # the most likely id always has mass_before 0 < p, so it stays
    return logits.masked_fill(drop.scatter(1, order, drop), -math.inf)


def apply_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    probs = logits.softmax(-1)  # (B, V)
    floor = min_p * probs.max(-1, keepdim=True).values  # (B, 1)
    return logits.masked_fill(probs < floor, -math.inf)


def process_logits(
    logits: torch.Tensor,
    settings: SamplingSettings,
    previous_ids: torch.Tensor | None = None,
    allowed_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Steps 1 to 6 of the module docstring: logits (B, V) -> logits (B, V), -inf = excluded.

    Half-precision logits are promoted to float32 (float64 ones stay), so that the softmax and the
    nucleus' cumulative sum are accurate.

    `allowed_ids` is a bool mask (V,) or (B, V), True = may be chosen. For greedy settings only the
    steps that can change the argmax (1 and 2) run.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if allowed_ids is not None:
        logits = logits.masked_fill(~allowed_ids, -math.inf)
    if previous_ids is not None and settings.repetition_penalty != 1:
        logits = apply_repetition_penalty(logits, previous_ids, settings.repetition_penalty)
    if settings.greedy:
        return logits
    if settings.temperature != 1:
        logits = logits / settings.temperature
    if settings.top_k:
        logits = apply_top_k(logits, settings.top_k)
    if settings.top_p < 1:
        logits = apply_top_p(logits, settings.top_p)
    if settings.min_p > 0:
        logits = apply_min_p(logits, settings.min_p)
    return logits


def sample(
    logits: torch.Tensor,
    settings: SamplingSettings,
    generator: torch.Generator | None = None,
    previous_ids: torch.Tensor | None = None,
    allowed_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """logits (B, V) -> next ids (B,) int64. `previous_ids` (B, N) feeds the repetition penalty."""
    logits = process_logits(logits, settings, previous_ids, allowed_ids)
    if settings.greedy:
        return logits.argmax(-1)
    probs = logits.softmax(-1)  # (B, V)
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)  # (B, V) ~ Exp(1)
    race.clamp_(min=torch.finfo(race.dtype).tiny)  # a drawn 0 would turn an excluded id's 0/0 into NaN
    return (probs / race).argmax(-1)
