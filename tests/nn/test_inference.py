"""optimize_for_inference: same function as the original model, inference only, a no-op where it can't pack."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alltokens.generate import SamplingSettings, generate_ids
from alltokens.models.lm import LM, LMConfig
from alltokens.nn.inference import PackedLinear, can_pack, optimize_for_inference
from alltokens.pipelines.text import TextModel
from alltokens.tokenizers import load_tokenizer

packing = pytest.mark.skipif(
    not can_pack(torch.zeros(1)), reason="this torch build has no oneDNN (packing is a no-op)"
)

GPT2_LIKE = dict(
    norm="layernorm",
    mlp="gelu_tanh",
    position_embedding="learned",
    qkv_bias=True,
    out_bias=True,
    mlp_bias=True,
)


def tiny_lm(**kw) -> LM:
    torch.manual_seed(0)
    base = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=6, vocab_size=97)
    model = LM(LMConfig(**{**base, **kw}))
    model.init_weights(std=0.2)  # large enough that the logits are O(1), so 1e-4 is a real bound
    return model.eval()


def packed_names(model: nn.Module) -> set[str]:
    return {name for name, m in model.named_modules() if isinstance(m, PackedLinear)}


@packing
@pytest.mark.parametrize("rows", [1, 8, 17])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_linear_equals_f_linear(rows, bias):
    torch.manual_seed(rows)
    linear = nn.Linear(96, 160, bias=bias)
    packed = PackedLinear(linear)
    x = torch.randn(rows, 2, 96)
    with torch.inference_mode():
        for inp in (x, x[:, 1], x.transpose(0, 1)):  # 3-D, a strided slice, a non-contiguous view
            assert (packed(inp) - F.linear(inp, linear.weight, linear.bias)).abs().max() <= 1e-4


@packing
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("variant", [GPT2_LIKE, dict(mlp="swiglu", tie_word_embeddings=False)])
def test_optimized_logits_equal_the_original_in_prefill_and_cached_decode(batch, variant):
    model = tiny_lm(**variant)
    fast = optimize_for_inference(copy.deepcopy(model), min_elements=0)
    assert "lm_head" in packed_names(fast) and "core.blocks.1.mlp.proj" in packed_names(fast)
    ids = torch.randint(0, 97, (batch, 12))
    with torch.inference_mode():
        outputs = []
        for m in (model, fast):
            cache = m.new_cache(batch, 12)
            prefill = m(ids[:, :9], cache=cache)  # (B, 9, V)
            steps = [m(ids[:, t : t + 1], cache=cache) for t in range(9, 12)]  # 3 x (B, 1, V)
            outputs.append(torch.cat([prefill, *steps], dim=1))
    assert outputs[0].abs().max() > 0.5
    assert (outputs[0] - outputs[1]).abs().max() <= 1e-4


@packing
def test_greedy_generation_is_unchanged():
    model = tiny_lm(**GPT2_LIKE)
    fast = optimize_for_inference(copy.deepcopy(model), min_elements=0)
    prompts = [[5, 6, 7], [8, 9, 10, 11, 12]]  # left-padded batch
    runs = [
        torch.stack(list(generate_ids(m, prompts, SamplingSettings(temperature=0), 12)), 1)
        for m in (model, fast)
    ]
    assert torch.equal(runs[0], runs[1])


@packing
def test_tied_embedding_is_untouched_and_weights_are_counted_once():
    model = tiny_lm()
    table = model.embed.tokens.weight
    before = table.detach().clone()
    n_params = sum(p.numel() for p in model.parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}

    optimize_for_inference(model, min_elements=0)
    assert isinstance(model.lm_head, PackedLinear)
    assert model.embed.tokens.weight is table and table.is_contiguous() and not table.is_mkldnn
    assert torch.equal(table, before)
    assert "weight" in dict(model.lm_head.named_buffers())  # the head's packed copy is not a parameter
    assert sum(p.numel() for p in model.parameters()) == n_params
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], state[k]) for k in state)  # dense, same values: saving is unchanged


@packing
def test_gradients_are_refused_with_a_clear_error():
    model = optimize_for_inference(tiny_lm(), min_elements=0)
    with pytest.raises(RuntimeError, match="optimized for inference.*torch.no_grad"):
        model(torch.tensor([[1, 2, 3]]))


@packing
def test_small_layers_plain_and_subclassed_linears_are_left_alone():
    class Custom(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(600, 600), nn.Linear(8, 8), Custom(600, 600))
    optimize_for_inference(model)
    assert [type(m) for m in model] == [PackedLinear, nn.Linear, Custom]
    optimize_for_inference(model)  # a second call is harmless
    assert type(model[0]) is PackedLinear


@pytest.mark.parametrize("case", ["float64", "meta", "no-onednn"])
def test_unsupported_models_are_returned_unchanged(case, monkeypatch):
    model = tiny_lm()
    if case == "float64":
        model = model.double()
    elif case == "meta":
        model = model.to("meta")
    else:
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    modules = dict(model.named_modules())
    assert optimize_for_inference(model, min_elements=0) is model
    assert packed_names(model) == set()
    assert dict(model.named_modules()) == modules
    if case == "float64":
        with torch.inference_mode():
            assert model(torch.tensor([[1, 2, 3]])).dtype == torch.float64


@packing
def test_text_model_decodes_with_packed_weights():
    tok = load_tokenizer("bytes")
    model = tiny_lm(hidden_size=640, num_hidden_layers=1, num_attention_heads=10, vocab_size=tok.vocab_size)
    reference = copy.deepcopy(model)
    text_model = TextModel(model, tok)
    assert text_model.model is model
    block = {f"core.blocks.0.{name}" for name in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}
    assert packed_names(model) == block  # the 270 x 640 head is under the size threshold
    greedy = SamplingSettings(temperature=0)
    ids = [int(i) for i in torch.cat(list(generate_ids(reference, [text_model.encode("Hi")], greedy, 8)))]
    assert text_model.generate("Hi", max_new_tokens=8, temperature=0) == tok.decode(ids)
