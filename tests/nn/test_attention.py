"""The written-out attention path: same numbers and gradients as SDPA, and chosen only where it is
faster; packed sequences (segment masks and positions) computed as if each had a row of its own."""

import pytest
import torch
import torch.nn.functional as F

from alltokens.models.lm import LM, LMConfig
from alltokens.nn.attention import (
    attend,
    explicit_attention,
    explicit_is_faster,
    segment_mask,
    segment_positions,
)


def qkv(B=2, H=4, Hk=4, T=7, S=7, D=8, dtype=torch.float32, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    shapes = [(B, H, T, D), (B, Hk, S, D), (B, Hk, S, D)]
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(requires_grad) for s in shapes]


def sdpa(q, k, v, mask=None, is_causal=False):
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=k.shape[1] != q.shape[1]
    )


@pytest.mark.parametrize("Hk", [4, 2, 1])
def test_explicit_equals_sdpa_causal_with_gradients(Hk):
    q, k, v = qkv(Hk=Hk, requires_grad=True)
    ours = explicit_attention(q, k, v, is_causal=True)
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    ref = sdpa(q, k, v, is_causal=True)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    torch.testing.assert_close(ours, ref)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_explicit_equals_sdpa_with_a_padding_mask_and_a_fully_masked_row():
    q, k, v = qkv(T=5, S=6)
    mask = torch.ones(2, 1, 5, 6, dtype=torch.bool)
    mask[0, :, :, :2] = False  # left padding of row 0
    mask[1, :, 3] = False  # query 3 of row 1 sees nothing
    ours = explicit_attention(q, k, v, mask)
    torch.testing.assert_close(ours, sdpa(q, k, v, mask))
    assert ours[1, :, 3].eq(0).all()


def test_explicit_path_is_taken_only_for_bf16_cpu_training_of_short_sequences():
    q = torch.zeros(1, 1, 64, 8, dtype=torch.bfloat16, requires_grad=True)
    assert explicit_is_faster(q, 64)
    assert not explicit_is_faster(q, 10_000)  # long: SDPA's memory-light kernel
    assert not explicit_is_faster(q.detach(), 64)  # inference
    assert not explicit_is_faster(q.detach().float().requires_grad_(), 64)
    assert not explicit_is_faster(q.detach().half().requires_grad_(), 64)


def test_attend_in_bf16_training_matches_float32():
    q, k, v = qkv(T=16, S=16)
    ref = attend(q, k, v, is_causal=True)
    low = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    assert explicit_is_faster(low[0], 16)
    torch.testing.assert_close(attend(*low, is_causal=True).float(), ref, atol=3e-2, rtol=3e-2)


def test_bf16_autocast_training_step_of_an_lm_matches_float32():
    cfg = LMConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=50
    )
    model = LM(cfg)
    model.init_weights()
    ids = torch.randint(0, 50, (3, 12))

    def loss_and_grad(bf16: bool):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        return loss.detach(), model.core.blocks[0].attn.qkv.weight.grad.clone()

    loss32, grad32 = loss_and_grad(False)
    loss16, grad16 = loss_and_grad(True)
    torch.testing.assert_close(loss16, loss32, atol=2e-2, rtol=0)
    assert F.cosine_similarity(grad16.flatten(), grad32.flatten(), dim=0) > 0.99


def test_segment_positions_restart_at_each_segment_and_the_mask_keeps_segments_apart():
    segments = torch.tensor([[0, 0, 0, 1, 1, 2, -1, -1], [0, 1, 1, 1, 1, 1, 1, 1]])
    assert segment_positions(segments).tolist() == [[0, 1, 2, 0, 1, 0, 0, 1], [0, 0, 1, 2, 3, 4, 5, 6]]
    mask = segment_mask(segments)  # (2, 1, 8, 8)
    assert mask.shape == (2, 1, 8, 8)
    assert mask[0, 0, 4].tolist() == [False, False, False, True, True, False, False, False]
    assert mask[0, 0, 7].tolist() == [False] * 6 + [True, True]  # padding sees only padding
    assert mask[1, 0, 0].tolist() == [True] + [False] * 7


@pytest.mark.parametrize("position_embedding", ["rope", "learned"])
def test_sequences_packed_in_one_row_get_the_logits_of_rows_of_their_own(position_embedding):
    torch.manual_seed(0)
    cfg = LMConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        position_embedding=position_embedding,
        max_position_embeddings=16,
    )
    lm = LM(cfg)
    lm.init_weights()
    a, b = torch.randint(0, 50, (1, 5)), torch.randint(0, 50, (1, 7))
    packed = torch.cat([a, b], dim=1)  # (1, 12)
    segments = torch.tensor([[0] * 5 + [1] * 7])
    logits = lm(packed, positions=segment_positions(segments), mask=segment_mask(segments))  # (1, 12, V)
    torch.testing.assert_close(logits[:, :5], lm(a), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits[:, 5:], lm(b), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(lm(packed)[:, 5:], lm(b), atol=1e-3)  # without them b reads a
