"""The decoding loop: token ids in, token ids out, one step at a time. It knows nothing of text.

`generate_ids` prefills the prompts into a preallocated KV cache, then feeds one token per step and
yields the batch's next ids. Prompts of different lengths are left-padded so the whole batch shares
one cache length; every row gets

- positions counting from 0 at its own first real token, and
- a boolean mask (True = may attend) that hides the pad slots from every query,

so each row decodes exactly as if it ran alone. When nothing is padded the mask is `None`: the prefill
then takes SDPA's causal fast path, and one new token may attend to every cached slot.

A model is anything with `model(ids, positions=, mask=, cache=, last_only=True) -> (B, 1, V)` logits
and `model.new_cache(B, max_len)`; `model.cfg.max_position_embeddings`, when present, bounds the
prompt plus the new tokens. `LM` is one; the tests also drive a mock.

Shape notation: B batch, T prompt tokens (after padding), S key slots, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import torch
from torch import nn

from alltokens.generate.sampling import (
    SamplingSettings,
    check_max_new_tokens,
    make_generator,
    sample,
)

FINISHED = -1  # the id yielded for a row that produced its end-of-sequence token at an earlier step


def left_pad(
    prompts: Sequence[Sequence[int]], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> ids (B, T) int64 and valid (B, T) bool, right-aligned.

    A pad slot repeats the row's first token rather than a pad id: the mask hides it from attention
    anyway, and this way the row's set of ids (which the repetition penalty reads) stays the same and
    no tokenizer needs a pad token.
    """
    if not prompts:
        raise ValueError("no prompts given")
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompt {i} is empty; give at least one token (e.g. a bos token)")
    T = max(len(p) for p in prompts)
    rows = [[p[0]] * (T - len(p)) + list(p) for p in prompts]
    valid = [[False] * (T - len(p)) + [True] * len(p) for p in prompts]
    return (
        torch.tensor(rows, dtype=torch.long, device=device),
        torch.tensor(valid, dtype=torch.bool, device=device),
    )


def padding_inputs(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """valid (B, T) bool -> positions (B, T) and a causal padding mask (B, 1, T, T), or None if unpadded.

    Pad queries may attend to themselves: a query row with every key hidden is NaN in some SDPA
    kernels, and a NaN would reach the cached keys and values of the pad slots and, through 0 * NaN,
    every real token that (with zero weight) looks at them.
    """
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)  # (B, T), 0 at each row's first real token
    if bool(valid.all()):
        return positions, None
    T = valid.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=valid.device).tril()  # (T, T)
    mask = causal & valid[:, None, None, :]  # (B, 1, T, T)
    return positions, mask | torch.eye(T, dtype=torch.bool, device=valid.device)


def check_context(model: nn.Module, prompt_len: int, max_new_tokens: int) -> None:
    context = getattr(getattr(model, "cfg", None), "max_position_embeddings", None)
    if context is None:
        return
    if prompt_len > context:
        raise ValueError(
            f"the prompt has {prompt_len} tokens, longer than the model's context of {context} tokens"
        )
    if prompt_len + max_new_tokens > context:
        raise ValueError(
            f"the prompt's {prompt_len} tokens + max_new_tokens {max_new_tokens} = "
            f"{prompt_len + max_new_tokens} exceed the model's context of {context} tokens; "
            f"use max_new_tokens <= {context - prompt_len}"
        )


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def generate_ids(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    settings: SamplingSettings,
    max_new_tokens: int,
    eos_id: int | Sequence[int] | None = None,
    allowed_ids: torch.Tensor | None = None,
) -> Generator[torch.Tensor, None, None]:
    """Yield the next ids (B,) int64 of every row, once per step, for up to `max_new_tokens` steps.

    A row that yields an id in `eos_id` is finished: later steps yield `FINISHED` (-1) for it, and the
    loop ends as soon as every row is. `allowed_ids` (bool (V,) or (B, V), True = may be chosen) is
    applied at every step. The caller may stop iterating at any point (stop strings). Bad arguments
    raise here, before the first step.
    """
    check_max_new_tokens(max_new_tokens)
    ids, valid = left_pad(prompts, model_device(model))  # (B, T)
    check_context(model, ids.shape[1], max_new_tokens)
    eos = None
    if eos_id is not None:
        eos = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), device=ids.device)
    return _decode(model, ids, valid, settings, max_new_tokens, eos, allowed_ids)


@torch.inference_mode()
def _decode(
    model: nn.Module,
    ids: torch.Tensor,
    valid: torch.Tensor,
    settings: SamplingSettings,
    max_new_tokens: int,
    eos: torch.Tensor | None,
    allowed_ids: torch.Tensor | None,
) -> Generator[torch.Tensor, None, None]:
    """The loop of `generate_ids` over validated, left-padded ids (B, T) and valid (B, T)."""
    if max_new_tokens == 0:
        return
    B, T = ids.shape
    device = ids.device
    positions, mask = padding_inputs(valid)
    step_mask = None  # (B, 1, 1, T + max_new_tokens), sliced to the filled slots at each step
    if mask is not None:
        ahead = torch.ones(B, max_new_tokens, dtype=torch.bool, device=device)
        step_mask = torch.cat([valid, ahead], dim=1)[:, None, None, :]
    history = None  # (B, T + max_new_tokens) every id so far, for the repetition penalty
    if settings.repetition_penalty != 1:
        history = torch.cat([ids, ids.new_zeros(B, max_new_tokens)], dim=1)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    generator = make_generator(settings, device)
    cache = model.new_cache(B, T + max_new_tokens)
    position = positions[:, -1:] + 1  # (B, 1) where each row's next token goes

    logits = model(ids, positions=positions, mask=mask, cache=cache, last_only=True)[:, -1]  # (B, V)
    for step in range(max_new_tokens):
        filled = T + step
        previous = None if history is None else history[:, :filled]
        next_ids = sample(logits, settings, generator, previous, allowed_ids)  # (B,)
        if history is not None:
            history[:, filled] = next_ids
        if eos is None:
            yield next_ids
        else:
            yield next_ids.masked_fill(done, FINISHED)
            done |= torch.isin(next_ids, eos)
            if bool(done.all()):
                return
        if step == max_new_tokens - 1:
            return
        step_attend = None if step_mask is None else step_mask[..., : filled + 1]  # (B, 1, 1, S)
        logits = model(next_ids[:, None], positions=position, mask=step_attend, cache=cache, last_only=True)[
            :, -1
        ]  # (B, V)
        position = position + 1  # a new tensor: the model may keep the one it was given
