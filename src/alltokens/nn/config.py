"""Typed configuration of the one transformer core.

Every family (GPT-2, Llama, Mistral, Qwen2, BERT, our own presets, and later ViT, DiT, ASR...) is the
same stack with different switches. Field names follow Hugging Face `config.json` where a family is
imported from there (`hidden_size`, `num_attention_heads`, `rope_theta`, ...), so import is a rename of
at most a few fields. `to_dict`/`from_dict` round-trip exactly through JSON.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

Self = TypeVar("Self", bound="Config")


class ConfigError(ValueError):
    """A config.json that cannot describe a model: unknown fields, wrong types, impossible shapes."""


def _is_config(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Config)


@dataclass
class Config:
    """Base for every config dataclass: JSON round trip and validation hooks."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Config) else value
        return out

    @classmethod
    def from_dict(cls: type[Self], data: dict[str, Any]) -> Self:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}")
        kwargs = {}
        for name, value in data.items():
            nested = [h for h in typing.get_args(hints[name]) or (hints[name],) if _is_config(h)]
            if nested and isinstance(value, dict):  # a Config field, or an optional one (`X | None`)
                value = nested[0].from_dict(value)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ConfigError(f"{cls.__name__}: {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls: type[Self], path: str | Path) -> Self:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class TransformerConfig(Config):
    """The core: `num_hidden_layers` blocks of attention + MLP over `(B, T, hidden_size)` embeddings."""

    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None  # None = num_attention_heads (MHA); 1 = MQA; else GQA
    head_dim: int | None = None  # None = hidden_size // num_attention_heads
    intermediate_size: int | None = None  # None = 4 * hidden_size (GELU) or Llama's 8/3 rule (SwiGLU)
    norm: Literal["layernorm", "rmsnorm"] = "rmsnorm"
    norm_eps: float = 1e-5
    norm_position: Literal["pre", "post"] = "pre"  # post: BERT-style x = norm(x + f(x))
    final_norm: bool = True  # pre-norm stacks end with a norm; post-norm ones (BERT) do not
    mlp: Literal["gelu", "gelu_tanh", "quick_gelu", "swiglu"] = "swiglu"  # quick_gelu: OpenAI CLIP
    qkv_bias: bool = False  # Qwen2 has biases on q, k, v only
    out_bias: bool = False  # bias on the attention output projection
    mlp_bias: bool = False
    norm_bias: bool = True  # LayerNorm bias (RMSNorm has none)
    position_embedding: Literal["rope", "learned", "none"] = "rope"
    max_position_embeddings: int = 1024
    rope_theta: float = 10000.0
    rope_dims: int = 1  # 2: positions are (row, col) pairs, each rotating half of the frequencies
    # HF rope_scaling dict: {"rope_type": "linear"|"dynamic"|"llama3"|"yarn", "factor": ..., ...}
    rope_scaling: dict[str, Any] | None = None
    causal: bool = True  # the default mask when none is given
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    cross_attention: bool = False  # blocks also attend to a context sequence
    context_size: int | None = None  # width of the context; None = hidden_size

    def __post_init__(self) -> None:
        if self.hidden_size <= 0 or self.num_hidden_layers <= 0 or self.num_attention_heads <= 0:
            raise ConfigError("hidden_size, num_hidden_layers and num_attention_heads must be positive")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}; set head_dim explicitly"
            )
        if self.num_attention_heads % self.kv_heads:
            raise ConfigError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.kv_heads}"
            )
        if self.rope_dims < 1:
            raise ConfigError(f"rope_dims must be >= 1, got {self.rope_dims}")
        if self.position_embedding == "rope" and self.head_size % (2 * self.rope_dims):
            raise ConfigError(
                f"{self.rope_dims}-D RoPE needs head_dim divisible by {2 * self.rope_dims}, got {self.head_size}"
            )

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def mlp_size(self) -> int:
        if self.intermediate_size is not None:
            return self.intermediate_size
        if self.mlp == "swiglu":  # Llama: 2/3 of 4C, rounded up to a multiple of 64
            return 64 * ((int(8 * self.hidden_size / 3) + 63) // 64)
        return 4 * self.hidden_size
