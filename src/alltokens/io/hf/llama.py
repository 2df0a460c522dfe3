"""Llama, Mistral and Qwen2 checkpoints <-> `models.lm.LM`.

The three are one architecture: pre-RMSNorm, rotary positions, a SwiGLU MLP, grouped-query attention.
They differ only in biases (Llama: `attention_bias` on q, k, v and o, and `mlp_bias`; Mistral: none;
Qwen2: q, k and v only) and in sliding-window attention. HF keeps q/k/v and gate/up as separate
linears; we fuse them ([q | k | v] in `attn.qkv`, [gate | up] in `mlp.fc`), so they are concatenated
on import and split on export. Everything else is the rename in `TABLE`.

Sliding-window attention over W keys is exactly full causal attention while a sequence is at most W
tokens long, so a model with a window (Mistral; Qwen2 with `use_sliding_window`) is imported with its
context capped at W (`max_position_embeddings = min(max_position_embeddings, W)`): exact within the
cap, and never silently different beyond it.

Rotary settings come as `rope_theta` + `rope_scaling` (transformers 4) or one `rope_parameters` dict
(transformers 5); both are read. Export writes the former, which both versions load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from alltokens.io.hf import names
from alltokens.models.lm import LMConfig
from alltokens.nn.config import ConfigError

MODEL_TYPES = ("llama", "mistral", "qwen2")

TABLE: names.Table = {
    "embed.tokens": "model.embed_tokens",
    "core.blocks.{i}.norm1": "model.layers.{i}.input_layernorm",
    "core.blocks.{i}.attn.qkv": tuple(f"model.layers.{{i}}.self_attn.{x}_proj" for x in "qkv"),
    "core.blocks.{i}.attn.proj": "model.layers.{i}.self_attn.o_proj",
    "core.blocks.{i}.norm2": "model.layers.{i}.post_attention_layernorm",
    "core.blocks.{i}.mlp.fc": ("model.layers.{i}.mlp.gate_proj", "model.layers.{i}.mlp.up_proj"),
    "core.blocks.{i}.mlp.proj": "model.layers.{i}.mlp.down_proj",
    "core.norm": "model.norm",
    "lm_head": "lm_head",
}
ATTENTION = frozenset({"core.blocks.{i}.attn.qkv", "core.blocks.{i}.attn.proj"})
MLP = frozenset({"core.blocks.{i}.mlp.fc", "core.blocks.{i}.mlp.proj"})
IGNORED = (".rotary_emb.inv_freq",)  # a buffer some older checkpoints saved

ROPE_SCALINGS = ("linear", "llama3", "yarn")  # what nn/rope.py implements

# transformers' defaults for fields a config.json may leave out; the shapes must be given
DEFAULTS: dict[str, dict[str, Any]] = {
    family: {
        "num_key_value_heads": None,
        "head_dim": None,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "pad_token_id": None,
        **extra,
    }
    for family, extra in {
        "llama": {"max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2},
        "mistral": {
            "max_position_embeddings": 131072,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "sliding_window": 4096,
        },
        "qwen2": {
            "max_position_embeddings": 32768,
            "bos_token_id": None,
            "eos_token_id": None,
            "sliding_window": 4096,
            "use_sliding_window": False,
            "max_window_layers": 28,
        },
    }.items()
}


def config_from_hf(hf: dict[str, Any]) -> LMConfig:
    model_type = hf.get("model_type", "llama")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"model_type {model_type!r} is not one of {MODEL_TYPES}")
    get = lambda key: names.read_field(hf, key, DEFAULTS[model_type], model_type)
    if get("hidden_act") not in ("silu", "swish"):
        raise ConfigError(f"{model_type} hidden_act {get('hidden_act')!r} is not supported (only 'silu')")
    qkv_bias, out_bias, mlp_bias = {
        "llama": (get("attention_bias"), get("attention_bias"), get("mlp_bias")),
        "mistral": (False, False, False),
        "qwen2": (True, False, False),
    }[model_type]
    max_len = get("max_position_embeddings")
    window = sliding_window(hf, model_type, get)
    theta, scaling = rope_from_hf(hf, max_len)
    return LMConfig(
        vocab_size=get("vocab_size"),
        hidden_size=get("hidden_size"),
        num_hidden_layers=get("num_hidden_layers"),
        num_attention_heads=get("num_attention_heads"),
        num_key_value_heads=get("num_key_value_heads"),
        head_dim=get("head_dim"),
        intermediate_size=get("intermediate_size"),
        norm="rmsnorm",
        norm_eps=get("rms_norm_eps"),
        mlp="swiglu",
        qkv_bias=qkv_bias,
        out_bias=out_bias,
        mlp_bias=mlp_bias,
        position_embedding="rope",
        max_position_embeddings=min(max_len, window) if window else max_len,
        rope_theta=theta,
        rope_scaling=scaling,
        attention_dropout=get("attention_dropout"),
        tie_word_embeddings=get("tie_word_embeddings"),
        bos_token_id=get("bos_token_id"),
        eos_token_id=get("eos_token_id"),
        pad_token_id=get("pad_token_id"),
    )


def sliding_window(hf: dict[str, Any], model_type: str, get: Callable[[str], Any]) -> int | None:
    """The attention window W if any layer uses one, else None."""
    if model_type == "mistral":
        return get("sliding_window")  # every layer, unless null
    if model_type == "qwen2" and get("use_sliding_window"):
        n = get("num_hidden_layers")
        layers = hf.get("layer_types") or ["sliding_attention"] * (n - min(get("max_window_layers"), n))
        return get("sliding_window") if "sliding_attention" in layers else None
    return None


def rope_from_hf(hf: dict[str, Any], max_len: int) -> tuple[float, dict[str, Any] | None]:
    """(rope_theta, our rope_scaling) from either the transformers 4 or the transformers 5 fields."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    if any(isinstance(v, dict) for v in params.values()):
        raise ConfigError(f"per-layer rope_parameters {sorted(params)} are not supported")
    theta = float(params.pop("rope_theta", hf.get("rope_theta", 10000.0)))
    kind = params.pop("rope_type", params.pop("type", "default"))
    partial = params.pop("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if partial != 1.0:
        raise ConfigError(f"partial_rotary_factor {partial!r} is not supported (only 1.0)")
    if kind == "default":
        return theta, None
    if kind not in ROPE_SCALINGS:
        raise ConfigError(
            f"rope_scaling type {kind!r} is not supported; supported: default, {', '.join(ROPE_SCALINGS)}"
        )
    if kind in ("llama3", "yarn"):  # transformers falls back to the top-level field, then to the context
        params["original_max_position_embeddings"] = hf.get(
            "original_max_position_embeddings", params.get("original_max_position_embeddings", max_len)
        )
    return theta, {"rope_type": kind, **params}


def export_biases(cfg: LMConfig) -> tuple[str, frozenset[str]]:
    """The HF model_type for this LM and which of our modules it gives biases (zeros where we have none).

    Qwen2 is exactly biases on q, k, v; any other bias pattern is Llama's `attention_bias` (q, k, v, o)
    and `mlp_bias`, which can express every subset once the missing biases are written as zeros."""
    standard_head = cfg.head_dim in (None, cfg.hidden_size // cfg.num_attention_heads)
    if cfg.qkv_bias and not cfg.out_bias and not cfg.mlp_bias and standard_head:
        return "qwen2", frozenset()
    attention = ATTENTION if cfg.qkv_bias or cfg.out_bias else frozenset()
    return "llama", attention | (MLP if cfg.mlp_bias else frozenset())


def config_to_hf(cfg: LMConfig) -> dict[str, Any]:
    """A Llama (or Qwen2) config.json; ConfigError names every switch neither can express."""
    names.require_fit(
        cfg, "llama", {"position_embedding": ("rope",), "norm": ("rmsnorm",), "mlp": ("swiglu",)}
    )
    if cfg.hidden_size % cfg.num_attention_heads:
        raise ConfigError(
            f"transformers' LlamaConfig needs hidden_size {cfg.hidden_size} to be a multiple of "
            f"num_attention_heads {cfg.num_attention_heads}, even with head_dim set"
        )
    model_type, biased = export_biases(cfg)
    hf = {
        "architectures": ["Qwen2ForCausalLM" if model_type == "qwen2" else "LlamaForCausalLM"],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.mlp_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_size,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": cfg.rope_scaling,
        "attention_dropout": cfg.attention_dropout,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
    }
    if model_type == "qwen2":
        return {**hf, "use_sliding_window": False, "sliding_window": None}
    return {**hf, "attention_bias": bool(biased & ATTENTION), "mlp_bias": bool(biased & MLP)}


def state_dict_from_hf(state: dict[str, torch.Tensor], cfg: LMConfig) -> dict[str, torch.Tensor]:
    state = {k if k.startswith(("model.", "lm_head.")) else f"model.{k}": t for k, t in state.items()}
    return names.from_hf(state, TABLE, cfg.num_hidden_layers, "Llama", ignored=IGNORED)


def state_dict_to_hf(state: dict[str, torch.Tensor], cfg: LMConfig) -> dict[str, torch.Tensor]:
    if cfg.tie_word_embeddings:  # stored once, as model.embed_tokens
        state = {k: t for k, t in state.items() if k != "lm_head.weight"}
    return names.to_hf(state, TABLE, cfg, "Llama", biased=export_biases(cfg)[1])
