"""Llama, Mistral and Qwen2 checkpoints built by transformers load into our LM with the same outputs."""

from __future__ import annotations

import json

import pytest
import torch

from alltokens.io.hf import llama
from alltokens.io.load import load_model
from alltokens.nn.config import ConfigError

transformers = pytest.importorskip("transformers")

V = 103

CASES = {
    "llama-gqa-untied-theta-biases": (
        "LlamaForCausalLM",
        "LlamaConfig",
        dict(
            hidden_size=60,
            num_attention_heads=6,
            num_key_value_heads=2,
            intermediate_size=70,
            rope_theta=5000.0,
            attention_bias=True,
            mlp_bias=True,
            tie_word_embeddings=False,
        ),
    ),
    "llama-mqa-tied-headdim-linear": (
        "LlamaForCausalLM",
        "LlamaConfig",
        dict(
            hidden_size=40,
            num_attention_heads=5,
            num_key_value_heads=1,
            head_dim=12,
            intermediate_size=56,
            tie_word_embeddings=True,
            rope_scaling={"rope_type": "linear", "factor": 2.0},
        ),
    ),
    "llama-llama3-scaling": (
        "LlamaForCausalLM",
        "LlamaConfig",
        dict(
            hidden_size=48,
            num_attention_heads=3,
            intermediate_size=64,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
    ),
    "mistral-window": (
        "MistralForCausalLM",
        "MistralConfig",
        dict(
            hidden_size=48,
            num_attention_heads=6,
            num_key_value_heads=3,
            intermediate_size=72,
            sliding_window=64,
            max_position_embeddings=256,
        ),
    ),
    "qwen2-biases-yarn": (
        "Qwen2ForCausalLM",
        "Qwen2Config",
        dict(
            hidden_size=40,
            num_attention_heads=5,
            num_key_value_heads=1,
            intermediate_size=50,
            rope_theta=20000.0,
            max_position_embeddings=128,
            rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
        ),
    ),
}


def build_hf(name: str, seed: int = 0):
    model_class, config_class, kwargs = CASES[name]
    config = getattr(transformers, config_class)(vocab_size=V, num_hidden_layers=2, **kwargs)
    torch.manual_seed(seed)
    return getattr(transformers, model_class)(config)


@pytest.mark.parametrize("name", sorted(CASES))
def test_logits_and_greedy_tokens_match_transformers(name, tmp_path, parity, random_weights):
    hf = random_weights(build_hf(name))
    hf.save_pretrained(tmp_path)
    cfg, ours = load_model(tmp_path)
    assert cfg.num_attention_heads == hf.config.num_attention_heads
    assert cfg.kv_heads == hf.config.num_key_value_heads
    parity(hf, ours, V)


def test_sharded_checkpoint_loads(tmp_path, parity, random_weights):
    hf = random_weights(build_hf("qwen2-biases-yarn"))
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 2
    _, ours = load_model(tmp_path)
    parity(hf, ours, V)


def test_mistral_window_caps_the_context_and_qwen2_only_with_sliding_layers():
    mistral = llama.config_from_hf(build_hf("mistral-window").config.to_dict())
    assert mistral.max_position_embeddings == 64  # the sliding window, not 256
    qwen = {**build_hf("qwen2-biases-yarn").config.to_dict(), "sliding_window": 16, "layer_types": None}
    context = lambda **change: llama.config_from_hf({**qwen, **change}).max_position_embeddings
    assert context(use_sliding_window=False) == 128
    assert context(use_sliding_window=True, max_window_layers=28) == 128  # no layer >= 28 of 2 slides
    assert context(use_sliding_window=True, max_window_layers=1) == 16
    assert context(use_sliding_window=True, layer_types=["full_attention", "sliding_attention"]) == 16


def test_transformers4_and_5_rope_fields_read_alike():
    base = {
        "model_type": "llama",
        "vocab_size": V,
        "hidden_size": 32,
        "intermediate_size": 40,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    scaling = {"factor": 4.0, "original_max_position_embeddings": 32}
    v4 = llama.config_from_hf({**base, "rope_theta": 500.0, "rope_scaling": {"type": "yarn", **scaling}})
    v5 = llama.config_from_hf(
        {**base, "rope_parameters": {"rope_type": "yarn", "rope_theta": 500.0, **scaling}}
    )
    assert v4 == v5
    assert v4.rope_theta == 500.0 and v4.rope_scaling == {"rope_type": "yarn", **scaling}
    default = llama.config_from_hf({**base, "rope_parameters": {"rope_type": "default", "rope_theta": 7.0}})
    assert default.rope_scaling is None and default.rope_theta == 7.0


def test_name_table_round_trips_both_directions(random_weights):
    hf = random_weights(build_hf("llama-gqa-untied-theta-biases"))
    cfg = llama.config_from_hf(hf.config.to_dict())
    hf_state = hf.state_dict()
    ours = llama.state_dict_from_hf(hf_state, cfg)
    assert ours["core.blocks.0.attn.qkv.weight"].shape == (60 + 2 * 20, 60)  # [q | k | v], 6 and 2 heads
    assert ours["core.blocks.1.mlp.fc.weight"].shape == (2 * 70, 60)  # [gate | up]
    back = llama.state_dict_to_hf(ours, cfg)
    assert back.keys() == hf_state.keys()
    assert all(torch.equal(back[k], hf_state[k]) for k in back)
    again = llama.state_dict_from_hf(back, cfg)
    assert all(torch.equal(again[k], ours[k]) for k in ours)


def test_bare_model_names_without_the_model_prefix_load(random_weights):
    hf = random_weights(build_hf("llama-mqa-tied-headdim-linear"))
    cfg = llama.config_from_hf(hf.config.to_dict())
    bare = {k.removeprefix("model."): t for k, t in hf.state_dict().items() if k != "lm_head.weight"}
    ours = llama.state_dict_from_hf(bare, cfg)
    assert torch.equal(ours["embed.tokens.weight"], hf.model.embed_tokens.weight)
    assert "core.norm.weight" in ours


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "'dynamic'"),
        ({"rope_scaling": {"rope_type": "longrope", "factor": 2.0}}, "'longrope'"),
        ({"hidden_act": "gelu"}, "hidden_act 'gelu'"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
        ({"model_type": "gemma"}, "gemma"),
    ],
)
def test_unrepresentable_config_values_are_refused_by_name(change, named):
    hf = {
        "model_type": "llama",
        "vocab_size": V,
        "hidden_size": 32,
        "intermediate_size": 40,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        **change,
    }
    with pytest.raises(ConfigError, match=named):
        llama.config_from_hf(hf)


def test_missing_shape_field_is_named(tmp_path):
    hf = {
        "model_type": "qwen2",
        "vocab_size": V,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    with pytest.raises(ConfigError, match="intermediate_size"):
        llama.config_from_hf(hf)


def test_v5_config_json_written_by_transformers_is_read(tmp_path):
    build_hf("qwen2-biases-yarn").config.save_pretrained(tmp_path)
    cfg = llama.config_from_hf(json.loads((tmp_path / "config.json").read_text()))
    assert (cfg.qkv_bias, cfg.out_bias, cfg.mlp_bias) == (True, False, False)
    assert cfg.rope_scaling["rope_type"] == "yarn" and cfg.rope_theta == 20000.0


@pytest.mark.parametrize(
    "scaling",
    [
        {"rope_type": "linear", "factor": 3.0},
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
        {
            "rope_type": "yarn",
            "factor": 8.0,
            "original_max_position_embeddings": 64,
            "beta_fast": 16.0,
            "mscale": 0.9,
            "mscale_all_dim": 0.7,
            "truncate": False,
        },
        {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64, "attention_factor": 1.3},
    ],
)
def test_rope_scaling_frequencies_match_transformers(scaling):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from alltokens.nn.rope import rope_inverse_frequencies

    config = transformers.LlamaConfig(
        hidden_size=64,
        num_attention_heads=2,
        rope_theta=30000.0,
        max_position_embeddings=256,
        rope_scaling=dict(scaling),
    )
    expected, expected_factor = ROPE_INIT_FUNCTIONS[scaling["rope_type"]](config, "cpu")
    theta, ours_scaling = llama.rope_from_hf(config.to_dict(), 256)
    inv_freq, factor = rope_inverse_frequencies(32, theta, ours_scaling)
    torch.testing.assert_close(inv_freq, expected, rtol=1e-6, atol=0)
    assert factor == pytest.approx(expected_factor)
