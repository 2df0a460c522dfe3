"""BERT-family checkpoints (BERT, MiniLM, sentence-transformers) <-> `models.encoder.Encoder`.

BERT is our encoder with post-LayerNorm blocks, learned positions, token types, an embedding
LayerNorm, an exact-GELU MLP and biases everywhere (the `EncoderConfig` defaults). The only structural
difference is attention: HF keeps separate query/key/value linears and we keep one fused `qkv` laid out
[q | k | v], so they are concatenated on import and split on export. Everything else is the rename in
`TABLE`.

Checkpoints saved from `BertModel` have bare names (`embeddings.word_embeddings.weight`); those saved
from a task model (`BertForMaskedLM`, ...) put them under `bert.`. Both are accepted. Parts the encoder
does not build are dropped: the pooler (a tanh layer on [CLS] that sentence-transformers does not use),
the pretraining and task heads (`cls.`, `classifier.`), and the `position_ids`/`token_type_ids` index
buffers.
"""

from __future__ import annotations

from typing import Any

import torch

from alltokens.io.hf import names
from alltokens.models.encoder import EncoderConfig
from alltokens.nn.config import ConfigError

MODEL_TYPES = ("bert",)

TABLE: names.Table = {
    "embed.tokens": "embeddings.word_embeddings",
    "embed.positions": "embeddings.position_embeddings",
    "embed.token_types": "embeddings.token_type_embeddings",
    "embed.norm": "embeddings.LayerNorm",
    "core.blocks.{i}.attn.qkv": tuple(
        f"encoder.layer.{{i}}.attention.self.{n}" for n in ("query", "key", "value")
    ),
    "core.blocks.{i}.attn.proj": "encoder.layer.{i}.attention.output.dense",
    "core.blocks.{i}.norm1": "encoder.layer.{i}.attention.output.LayerNorm",  # post-norm after attention
    "core.blocks.{i}.mlp.fc": "encoder.layer.{i}.intermediate.dense",
    "core.blocks.{i}.mlp.proj": "encoder.layer.{i}.output.dense",
    "core.blocks.{i}.norm2": "encoder.layer.{i}.output.LayerNorm",  # post-norm after the MLP
}
IGNORED = ("pooler.", "cls.", "classifier.", "embeddings.position_ids", "embeddings.token_type_ids")

EXPORT_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}

# transformers' BertConfig defaults for fields a config.json may leave out; the shapes must be given
DEFAULTS: dict[str, Any] = {
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "pad_token_id": 0,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "position_embedding_type": "absolute",
}

# switches whose non-default values change the function computed, which the encoder does not implement
UNSUPPORTED = {"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False}

# the encoder switches a BERT checkpoint fixes
BERT_SWITCHES = {
    "norm": "layernorm",
    "norm_position": "post",
    "final_norm": False,
    "norm_bias": True,
    "qkv_bias": True,
    "out_bias": True,
    "mlp_bias": True,
    "position_embedding": "learned",
    "cross_attention": False,
}


def config_from_hf(hf: dict[str, Any]) -> EncoderConfig:
    field = lambda key: names.read_field(hf, key, DEFAULTS, "BERT")
    names.check_switches(hf, UNSUPPORTED, "BERT")
    return EncoderConfig(
        vocab_size=field("vocab_size"),
        hidden_size=field("hidden_size"),
        num_hidden_layers=field("num_hidden_layers"),
        num_attention_heads=field("num_attention_heads"),
        intermediate_size=field("intermediate_size"),
        mlp=names.gelu_activation(field("hidden_act"), "hidden_act", "BERT"),
        norm_eps=field("layer_norm_eps"),
        max_position_embeddings=field("max_position_embeddings"),
        type_vocab_size=field("type_vocab_size"),
        pad_token_id=field("pad_token_id") or 0,
        attention_dropout=field("attention_probs_dropout_prob"),
        hidden_dropout=field("hidden_dropout_prob"),
    )


def config_to_hf(cfg: EncoderConfig) -> dict[str, Any]:
    problems = [
        f"{k}={getattr(cfg, k)!r} (needs {v!r})" for k, v in BERT_SWITCHES.items() if getattr(cfg, k) != v
    ]
    if cfg.mlp not in EXPORT_ACTIVATIONS:
        problems.append(f"mlp={cfg.mlp!r} (needs 'gelu' or 'gelu_tanh')")
    if cfg.head_size * cfg.num_attention_heads != cfg.hidden_size:
        problems.append(f"head_dim={cfg.head_dim} (needs hidden_size / num_attention_heads)")
    if problems:
        raise ConfigError(f"this encoder does not fit Hugging Face model_type 'bert': {', '.join(problems)}")
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "intermediate_size": cfg.mlp_size,
        "hidden_act": EXPORT_ACTIVATIONS[cfg.mlp],
        "layer_norm_eps": cfg.norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "pad_token_id": cfg.pad_token_id,
        "position_embedding_type": "absolute",
        "hidden_dropout_prob": cfg.hidden_dropout,
        "attention_probs_dropout_prob": cfg.attention_dropout,
    }


def state_dict_from_hf(state: dict[str, torch.Tensor], cfg: EncoderConfig) -> dict[str, torch.Tensor]:
    """HF names (bare or under `bert.`) -> ours; unknown names are kept so that `load_into` reports them."""
    bare = {k.removeprefix("bert."): t for k, t in state.items()}
    kept = {k: t for k, t in bare.items() if not k.startswith(IGNORED)}
    return names.from_hf(kept, TABLE, cfg.num_hidden_layers, "BERT")


def state_dict_to_hf(state: dict[str, torch.Tensor], cfg: EncoderConfig) -> dict[str, torch.Tensor]:
    """Our names -> `BertModel` names; `qkv` is split back into query, key and value."""
    return names.to_hf(state, TABLE, cfg, "BERT")
