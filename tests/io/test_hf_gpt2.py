"""GPT-2 checkpoints built by transformers load into our LM with the same outputs."""

from __future__ import annotations

import pytest
import torch

from alltokens.io.checkpoint import load_into
from alltokens.io.hf import gpt2
from alltokens.io.load import load_model
from alltokens.models import build_model
from alltokens.nn.config import ConfigError

transformers = pytest.importorskip("transformers")

V = 97


def build_hf(seed: int = 0, **kwargs):
    config = transformers.GPT2Config(
        vocab_size=V, n_embd=45, n_layer=2, n_head=5, n_positions=64, bos_token_id=0, eos_token_id=1, **kwargs
    )
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(config)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # tied, gelu_new (tanh), 5 heads of 9
        {
            "tie_word_embeddings": False,
            "activation_function": "gelu",
            "n_inner": 70,
            "layer_norm_epsilon": 1e-3,
        },
    ],
    ids=["tied-gelu_new", "untied-gelu-n_inner"],
)
def test_logits_and_greedy_tokens_match_transformers(kwargs, tmp_path, parity, random_weights):
    hf = random_weights(build_hf(**kwargs))
    hf.save_pretrained(tmp_path)
    cfg, ours = load_model(tmp_path)
    assert cfg.tie_word_embeddings == hf.config.tie_word_embeddings
    parity(hf, ours, V)


def test_name_table_round_trips_both_directions(random_weights):
    hf = random_weights(build_hf(tie_word_embeddings=False))
    cfg = gpt2.config_from_hf(hf.config.to_dict())
    hf_state = hf.state_dict()
    ours = gpt2.state_dict_from_hf(hf_state, cfg)
    assert ours["core.blocks.0.mlp.fc.weight"].shape == (4 * 45, 45)  # Conv1D (45, 180) transposed
    assert torch.equal(
        ours["core.blocks.1.attn.qkv.weight"], hf_state["transformer.h.1.attn.c_attn.weight"].t()
    )
    back = gpt2.state_dict_to_hf(ours, cfg)
    assert back.keys() == hf_state.keys()
    assert all(torch.equal(back[k], hf_state[k]) for k in back)


def test_bare_gpt2model_names_and_old_mask_buffers_load(random_weights):
    hf = random_weights(build_hf())
    cfg = gpt2.config_from_hf(hf.config.to_dict())
    bare = {k.removeprefix("transformer."): t for k, t in hf.state_dict().items() if k != "lm_head.weight"}
    bare["h.0.attn.bias"] = torch.ones(1, 1, 64, 64).tril()  # saved by transformers < 4.30
    bare["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    ours = gpt2.state_dict_from_hf(bare, cfg)
    model = build_model(cfg)
    load_into(model, ours)  # strict: every weight placed, the buffers dropped, nothing left over
    assert torch.equal(model.lm_head.weight, hf.transformer.wte.weight)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"activation_function": "relu"}, "activation_function 'relu'"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
        ({"scale_attn_weights": False}, "scale_attn_weights"),
        ({"add_cross_attention": True}, "add_cross_attention"),
    ],
)
def test_unrepresentable_config_values_are_refused_by_name(change, named):
    hf = {"model_type": "gpt2", "vocab_size": V, "n_embd": 32, "n_layer": 1, "n_head": 2, **change}
    with pytest.raises(ConfigError, match=named):
        gpt2.config_from_hf(hf)


def test_missing_shape_field_is_named():
    with pytest.raises(ConfigError, match="'n_head'"):
        gpt2.config_from_hf({"model_type": "gpt2", "vocab_size": V, "n_embd": 32, "n_layer": 1})
