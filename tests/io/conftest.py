"""Shared pieces of the Hugging Face parity tests: random weights with real margins, greedy decoding."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random, norms around 1 and biases non-zero, so that a misplaced bias or norm
    weight shows in the logits; std 0.1 (not HF's 0.02) keeps greedy argmaxes clear of near-ties."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_norm = ("norm" in name or "ln_" in name) and name.endswith("weight")
            p.copy_(1 + 0.1 * noise if is_norm else 0.1 * noise)
    return model.eval()


@torch.no_grad()
def greedy(model: torch.nn.Module, ids: torch.Tensor, n: int) -> torch.Tensor:
    """Our LM decoding n tokens greedily with its KV cache: prompt once, then one token at a time."""
    cache = model.new_cache(ids.shape[0], ids.shape[1] + n)
    logits = model(ids, cache=cache, last_only=True)  # (B, 1, V)
    out = []
    for _ in range(n):
        nxt = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        out.append(nxt)
        logits = model(nxt, cache=cache, last_only=True)
    return torch.cat(out, dim=1)  # (B, n)


@torch.no_grad()
def hf_greedy(model: torch.nn.Module, ids: torch.Tensor, n: int) -> torch.Tensor:
    """transformers' own greedy `generate`, told of no end token so that it runs all n steps."""
    settings = transformers.GenerationConfig(
        do_sample=False, max_new_tokens=n, eos_token_id=None, pad_token_id=0
    )
    out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=settings)
    return out[:, ids.shape[1] :]


@pytest.fixture
def parity():
    """`check(hf_model, ours, vocab_size)`: same logits (fp32, 1e-4) and the same 32 greedy tokens."""

    def check(hf_model: torch.nn.Module, ours: torch.nn.Module, vocab_size: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab_size, (2, 17), generator=g)
        with torch.no_grad():
            expected = hf_model(ids).logits
            got = ours(ids)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-4
        prompt = ids[:1, :5]
        assert torch.equal(greedy(ours, prompt, 32), hf_greedy(hf_model, prompt, 32))

    return check


@pytest.fixture
def random_weights():
    return randomize
