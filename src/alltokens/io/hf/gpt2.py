"""GPT-2 checkpoints <-> `models.lm.LM`.

GPT-2 is our LM with learned positions, pre-LayerNorm, a GELU MLP and biases everywhere. Its attention
projection `c_attn` is already fused as [q | k | v], like ours, so the conversion is a rename plus one
quirk: GPT-2's `Conv1D` layers store weights as (in, out), the transpose of `nn.Linear`.

Checkpoints saved from `GPT2LMHeadModel` put the stack under `transformer.`; those saved from
`GPT2Model` have bare names and no head (fine when the embeddings are tied). The causal-mask buffers
`attn.bias`/`attn.masked_bias` of older checkpoints hold no weights and are dropped.
"""

from __future__ import annotations

from typing import Any

import torch

from alltokens.io.hf import names
from alltokens.models.lm import LMConfig

MODEL_TYPES = ("gpt2",)

TABLE: names.Table = {
    "embed.tokens": "transformer.wte",
    "embed.positions": "transformer.wpe",
    "core.blocks.{i}.norm1": "transformer.h.{i}.ln_1",
    "core.blocks.{i}.attn.qkv": "transformer.h.{i}.attn.c_attn",
    "core.blocks.{i}.attn.proj": "transformer.h.{i}.attn.c_proj",
    "core.blocks.{i}.norm2": "transformer.h.{i}.ln_2",
    "core.blocks.{i}.mlp.fc": "transformer.h.{i}.mlp.c_fc",
    "core.blocks.{i}.mlp.proj": "transformer.h.{i}.mlp.c_proj",
    "core.norm": "transformer.ln_f",
    "lm_head": "lm_head",
}
CONV1D = frozenset(k for k in TABLE if k.startswith("core.blocks") and "norm" not in k)  # (in, out)
BIASED = frozenset(TABLE) - {"embed.tokens", "embed.positions", "lm_head"}  # every Conv1D and LayerNorm
IGNORED = (".attn.bias", ".attn.masked_bias")

EXPORT_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new"}

# transformers' GPT2Config defaults for fields a config.json may leave out; the shapes must be given
DEFAULTS: dict[str, Any] = {
    "n_positions": 1024,
    "n_inner": None,
    "activation_function": "gelu_new",
    "resid_pdrop": 0.1,
    "attn_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5,
    "tie_word_embeddings": True,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
    "pad_token_id": None,
}

# switches whose non-default values change the function computed, which our core does not implement
# (reorder_and_upcast_attn only changes the precision of the softmax, so it is read as the default)
UNSUPPORTED = {
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
}


def config_from_hf(hf: dict[str, Any]) -> LMConfig:
    get = lambda key: names.read_field(hf, key, DEFAULTS, "GPT-2")
    names.check_switches(hf, UNSUPPORTED, "GPT-2")
    return LMConfig(
        vocab_size=get("vocab_size"),
        hidden_size=get("n_embd"),
        num_hidden_layers=get("n_layer"),
        num_attention_heads=get("n_head"),
        intermediate_size=get("n_inner"),  # None = 4 * n_embd, as in GPT-2
        norm="layernorm",
        norm_eps=get("layer_norm_epsilon"),
        mlp=names.gelu_activation(get("activation_function"), "activation_function", "GPT-2"),
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        norm_bias=True,
        position_embedding="learned",
        max_position_embeddings=get("n_positions"),
        attention_dropout=get("attn_pdrop"),
        hidden_dropout=get("resid_pdrop"),
        tie_word_embeddings=get("tie_word_embeddings"),
        bos_token_id=get("bos_token_id"),
        eos_token_id=get("eos_token_id"),
        pad_token_id=get("pad_token_id"),
    )


def config_to_hf(cfg: LMConfig) -> dict[str, Any]:
    """A GPT-2 config.json for a GPT-2-shaped LM; ConfigError names every switch that does not fit."""
    names.require_fit(
        cfg,
        "gpt2",
        {
            "position_embedding": ("learned",),
            "norm": ("layernorm",),
            "mlp": tuple(EXPORT_ACTIVATIONS),
            "num_key_value_heads": (None, cfg.num_attention_heads),
            "head_dim": (None, cfg.hidden_size // cfg.num_attention_heads),
        },
    )
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.max_position_embeddings,
        "n_embd": cfg.hidden_size,
        "n_layer": cfg.num_hidden_layers,
        "n_head": cfg.num_attention_heads,
        "n_inner": cfg.mlp_size,
        "activation_function": EXPORT_ACTIVATIONS[cfg.mlp],
        "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": cfg.hidden_dropout,
        "embd_pdrop": cfg.hidden_dropout,
        "attn_pdrop": cfg.attention_dropout,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
    }


def state_dict_from_hf(state: dict[str, torch.Tensor], cfg: LMConfig) -> dict[str, torch.Tensor]:
    state = {
        k if k.startswith(("transformer.", "lm_head.")) else f"transformer.{k}": t for k, t in state.items()
    }
    return names.from_hf(state, TABLE, cfg.num_hidden_layers, "GPT-2", transposed=CONV1D, ignored=IGNORED)


def state_dict_to_hf(state: dict[str, torch.Tensor], cfg: LMConfig) -> dict[str, torch.Tensor]:
    if cfg.tie_word_embeddings:  # stored once, as transformer.wte
        state = {k: t for k, t in state.items() if k != "lm_head.weight"}
    return names.to_hf(state, TABLE, cfg, "GPT-2", transposed=CONV1D, biased=BIASED)
