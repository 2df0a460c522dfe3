"""The id engine: KV-cached decoding equals the full forward pass, batches equal single runs."""

from __future__ import annotations

import pytest
import torch

from alltokens.generate.engine import FINISHED, generate_ids, left_pad, padding_inputs
from alltokens.generate.sampling import SamplingSettings
from alltokens.generate.scripted import ScriptedModel
from alltokens.models.lm import LM, LMConfig

GREEDY = SamplingSettings(temperature=0)
PROMPTS = [[5, 9, 2, 7, 1, 3], [11], [4, 4, 8]]
LLAMA_LIKE = dict(num_key_value_heads=2, norm="rmsnorm", mlp="swiglu", position_embedding="rope")
GPT2_LIKE = dict(
    norm="layernorm", mlp="gelu_tanh", position_embedding="learned", qkv_bias=True, out_bias=True
)


def tiny_lm(**overrides) -> LM:
    """float64, with large init so the logits are far from ties: token equality is then exact."""
    torch.manual_seed(0)
    cfg = LMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=48,
        max_position_embeddings=40,
        **overrides,
    )
    model = LM(cfg)
    model.init_weights(std=0.3)
    return model.double().eval()


def run(model, prompts, settings=GREEDY, max_new_tokens=8, **kwargs) -> list[list[int]]:
    steps = list(generate_ids(model, prompts, settings, max_new_tokens, **kwargs))
    return torch.stack(steps, dim=1).tolist() if steps else [[] for _ in prompts]


@pytest.mark.parametrize("family", [LLAMA_LIKE, GPT2_LIKE], ids=["llama", "gpt2"])
def test_greedy_with_the_cache_is_the_argmax_of_the_full_forward_at_every_step(family):
    model = tiny_lm(**family)
    generated = run(model, PROMPTS, max_new_tokens=10)  # a left-padded batch
    with torch.no_grad():
        for prompt, new in zip(PROMPTS, generated):
            for t, token in enumerate(new):
                ids = torch.tensor([prompt + new[:t]])
                assert model(ids)[0, -1].argmax().item() == token, (prompt, t)


@pytest.mark.parametrize("family", [LLAMA_LIKE, GPT2_LIKE], ids=["llama", "gpt2"])
@pytest.mark.parametrize("penalty", [1.0, 1.5])
def test_a_batch_of_different_lengths_equals_one_by_one(family, penalty):
    model = tiny_lm(**family)
    settings = SamplingSettings(temperature=0, repetition_penalty=penalty)
    batch = run(model, PROMPTS, settings, max_new_tokens=12)
    assert batch == [run(model, [p], settings, max_new_tokens=12)[0] for p in PROMPTS]


def test_padded_prefill_logits_equal_each_row_alone():
    model = tiny_lm(**LLAMA_LIKE)
    ids, valid = left_pad(PROMPTS)
    positions, mask = padding_inputs(valid)
    with torch.no_grad():
        batch = model(ids, positions=positions, mask=mask)  # (B, T, V)
        assert torch.isfinite(batch).all()
        for b, prompt in enumerate(PROMPTS):
            alone = model(torch.tensor([prompt]))[0]  # (T_b, V)
            torch.testing.assert_close(batch[b, -len(prompt) :], alone)


def test_padding_inputs():
    valid = torch.tensor([[False, True, True], [True, True, True]])
    positions, mask = padding_inputs(valid)
    assert positions.tolist() == [[0, 0, 1], [0, 1, 2]]
    assert mask.shape == (2, 1, 3, 3)
    assert mask[0, 0].tolist() == [[True, False, False], [False, True, False], [False, True, True]]
    assert mask[1, 0].tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert padding_inputs(torch.ones(2, 3, dtype=torch.bool))[1] is None


def test_left_pad_repeats_the_first_token():
    ids, valid = left_pad([[7, 8, 9], [5]])
    assert ids.tolist() == [[7, 8, 9], [5, 5, 5]]
    assert valid.tolist() == [[True, True, True], [False, False, True]]


def test_the_engine_feeds_positions_and_masks_only_where_padded():
    model = ScriptedModel([[1, 2, 3]], vocab_size=8)
    run(model, [[4, 4, 4]], max_new_tokens=3)
    assert [c.mask for c in model.calls] == [None, None, None]
    assert [c.positions.tolist() for c in model.calls] == [[[0, 1, 2]], [[3]], [[4]]]
    assert [c.ids.tolist() for c in model.calls] == [[[4, 4, 4]], [[1]], [[2]]]

    model = ScriptedModel([[1, 2, 3], [1, 2, 3]], vocab_size=8)
    run(model, [[4, 4, 4], [6]], max_new_tokens=3)
    assert [c.positions[1].tolist() for c in model.calls] == [[0, 0, 0], [1], [2]]
    assert [c.mask.shape for c in model.calls] == [(2, 1, 3, 3), (2, 1, 1, 4), (2, 1, 1, 5)]
    assert model.calls[2].mask[1, 0, 0].tolist() == [False, False, True, True, True]


def test_rows_finish_at_eos_and_the_loop_ends_when_all_have():
    eos = 0
    model = ScriptedModel([[3, eos], [4, 5, 6, eos], [7, 7, 7, 7, 7, 7]], vocab_size=8)
    got = run(model, [[1], [2], [3]], max_new_tokens=10, eos_id=eos)
    assert got == [[3, eos, -1, -1, -1, -1, -1, -1, -1, -1], [4, 5, 6, eos] + [-1] * 6, [7] * 10]
    assert FINISHED == -1

    model = ScriptedModel([[3, eos], [4, 5, eos]], vocab_size=8)
    got = run(model, [[1], [2]], max_new_tokens=10, eos_id=eos)
    assert got == [[3, eos, -1], [4, 5, eos]]
    assert len(model.calls) == 3  # no model call after the last row finished


def test_several_eos_ids():
    model = ScriptedModel([[3, 6, 1]], vocab_size=8)
    assert run(model, [[1]], max_new_tokens=5, eos_id=[5, 6]) == [[3, 6]]


def test_a_seed_reproduces_sampling_and_another_seed_differs():
    model = tiny_lm(**LLAMA_LIKE)
    settings = lambda seed: SamplingSettings(temperature=1.0, top_p=0.95, seed=seed)  # noqa: E731
    first = run(model, PROMPTS, settings(1), max_new_tokens=16)
    assert first == run(model, PROMPTS, settings(1), max_new_tokens=16)
    assert first != run(model, PROMPTS, settings(2), max_new_tokens=16)


def test_allowed_ids_constrain_every_step():
    model = tiny_lm(**LLAMA_LIKE)
    allowed = torch.zeros(48, dtype=torch.bool)
    allowed[[10, 20, 30]] = True
    got = run(model, PROMPTS, SamplingSettings(seed=0), max_new_tokens=10, allowed_ids=allowed)
    assert {t for row in got for t in row} <= {10, 20, 30}


def test_zero_new_tokens_yields_nothing():
    assert run(tiny_lm(), PROMPTS, max_new_tokens=0) == [[], [], []]


def test_a_prompt_longer_than_the_context_names_both_numbers():
    model = tiny_lm()  # context 40
    with pytest.raises(ValueError, match="41 tokens.*context of 40"):
        generate_ids(model, [list(range(41))], GREEDY, 1)


def test_prompt_plus_new_tokens_beyond_the_context_names_the_numbers():
    model = tiny_lm()
    with pytest.raises(ValueError, match="30 tokens \\+ max_new_tokens 11 = 41 exceed .*context of 40"):
        generate_ids(model, [list(range(30))], GREEDY, 11)
    assert len(run(model, [list(range(30))], max_new_tokens=10)[0]) == 10  # exactly fills it


@pytest.mark.parametrize(
    "prompts, match", [([], "no prompts"), ([[1, 2], []], "prompt 1 is empty")], ids=["none", "empty"]
)
def test_missing_prompts(prompts, match):
    with pytest.raises(ValueError, match=match):
        generate_ids(tiny_lm(), prompts, GREEDY, 4)


def test_negative_max_new_tokens():
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 0, got -1"):
        generate_ids(tiny_lm(), PROMPTS, GREEDY, -1)
