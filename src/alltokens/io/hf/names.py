"""Weight-name tables for the decoder families, applied in both directions.

A family's table maps each of our modules to its Hugging Face module, e.g.
`"core.blocks.{i}.attn.proj": "model.layers.{i}.self_attn.o_proj"`; `{i}` is the layer index. Every
module's `.weight` and `.bias` follow it. The rename is the whole conversion except for three special
cases, named per family next to its table:

- fused: a tuple of HF modules is concatenated along the output dimension (dim 0) into one of ours,
  and split back by the widths `fused_widths` gives (our `attn.qkv` is [q | k | v], `mlp.fc` is
  [gate | up]);
- transposed: GPT-2's `Conv1D` stores weights as (in, out), the transpose of `nn.Linear`;
- biased: HF modules that always carry a bias. Where our model has none, export writes zeros, which
  computes the same function.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch

from alltokens.io.checkpoint import CheckpointError
from alltokens.nn.config import ConfigError, TransformerConfig

Table = dict[str, str | tuple[str, ...]]  # our module (template) -> HF module(s)
LEAVES = ("weight", "bias")


def expand(table: Table, num_layers: int) -> list[tuple[str, str, tuple[str, ...]]]:
    """(template, our module, HF modules) for every module of a `num_layers` stack."""
    rows = []
    for template, theirs in table.items():
        parts = theirs if isinstance(theirs, tuple) else (theirs,)
        layers = range(num_layers) if "{i}" in template else [None]
        for i in layers:
            rows.append((template, template.format(i=i), tuple(p.format(i=i) for p in parts)))
    return rows


def fused_widths(cfg: TransformerConfig) -> dict[str, list[int]]:
    """Output widths of the parts of our fused linears, by module name suffix."""
    H, Hk, D = cfg.num_attention_heads, cfg.kv_heads, cfg.head_size
    return {"attn.qkv": [H * D, Hk * D, Hk * D], "mlp.fc": [cfg.mlp_size, cfg.mlp_size]}


def from_hf(
    state: dict[str, torch.Tensor],
    table: Table,
    num_layers: int,
    family: str,
    transposed: Collection[str] = (),
    ignored: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """HF names -> ours. Names ending in `ignored` (buffers such as GPT-2's causal `attn.bias`) are
    dropped; any other name the table does not know is kept as is, so that `load_into` reports it."""
    rest = dict(state)
    out = {}
    for template, ours, parts in expand(table, num_layers):
        for leaf in LEAVES:
            keys = [f"{p}.{leaf}" for p in parts]
            missing = [k for k in keys if k not in rest]
            if len(missing) == len(keys):
                continue  # absent entirely: `load_into` names it if the model needs it
            if missing:
                raise CheckpointError(f"{family} checkpoint lacks {missing} (parts of our {ours}.{leaf})")
            tensors = [rest.pop(k) for k in keys]
            if leaf == "weight" and template in transposed:
                tensors = [t.t() for t in tensors]
            if len({t.shape[1:] for t in tensors}) > 1:
                shapes = {k: tuple(t.shape) for k, t in zip(keys, tensors)}
                raise CheckpointError(f"{family} checkpoint: {shapes} cannot be fused into our {ours}.{leaf}")
            out[f"{ours}.{leaf}"] = torch.cat(tensors) if len(tensors) > 1 else tensors[0]
    out.update({k: t for k, t in rest.items() if not k.endswith(ignored)})
    return out


def to_hf(
    state: dict[str, torch.Tensor],
    table: Table,
    cfg: TransformerConfig,
    family: str,
    transposed: Collection[str] = (),
    biased: Collection[str] = (),
) -> dict[str, torch.Tensor]:
    """Our names -> HF names; every weight must have a place in the table."""
    rest = dict(state)
    widths = fused_widths(cfg)
    out = {}
    for template, ours, parts in expand(table, cfg.num_hidden_layers):
        weight = rest.get(f"{ours}.weight")
        if template in biased and weight is not None and f"{ours}.bias" not in rest:
            rest[f"{ours}.bias"] = weight.new_zeros(weight.shape[0])  # (out,): a missing bias is zero
        for leaf in LEAVES:
            t = rest.pop(f"{ours}.{leaf}", None)
            if t is None:
                continue
            pieces = [t]
            if len(parts) > 1:  # a fused module: "core.blocks.{i}.attn.qkv" -> widths["attn.qkv"]
                pieces = t.split(widths[".".join(template.split(".")[-2:])])
            if leaf == "weight" and template in transposed:
                pieces = [x.t() for x in pieces]
            out.update({f"{p}.{leaf}": x.contiguous() for p, x in zip(parts, pieces)})
    if rest:
        raise ConfigError(f"weights with no place in a {family} checkpoint: {sorted(rest)[:8]}")
    return out


# switches every HF decoder family we export has fixed: a causal pre-norm stack ending in a norm
DECODER_SWITCHES = {
    "norm_position": ("pre",),
    "final_norm": (True,),
    "causal": (True,),
    "cross_attention": (False,),
}


def require_fit(cfg: TransformerConfig, model_type: str, allowed: dict[str, tuple]) -> None:
    """ConfigError naming every config field whose value `model_type` cannot express."""
    problems = [
        f"{field}={getattr(cfg, field)!r} (needs {' or '.join(map(repr, values))})"
        for field, values in {**DECODER_SWITCHES, **allowed}.items()
        if getattr(cfg, field) not in values
    ]
    if problems:
        raise ConfigError(
            f"this model does not fit Hugging Face model_type {model_type!r}: {', '.join(problems)}"
        )


def read_field(hf: dict[str, Any], key: str, defaults: dict[str, Any], family: str) -> Any:
    """`hf[key]`, else transformers' default for that family; a field with no default must be present."""
    if key in hf:
        return hf[key]
    if key in defaults:
        return defaults[key]
    raise ConfigError(f"{family} config.json lacks the field {key!r}")


# HF activation names -> our mlp; "gelu_new" is the tanh approximation the original GPT-2 used
GELU_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def check_switches(hf: dict[str, Any], supported: dict[str, Any], family: str) -> None:
    """Refuse a config.json whose switches change the function computed in ways our core does not."""
    for key, value in supported.items():
        if hf.get(key, value) != value:
            raise ConfigError(f"{family} config.json: {key}={hf[key]!r} is not supported (only {value!r})")


def gelu_activation(act: str, key: str, family: str) -> str:
    """An HF GELU activation name as our `mlp` value."""
    if act not in GELU_ACTIVATIONS:
        raise ConfigError(
            f"{family} config.json: {key} {act!r} is not supported; supported: {sorted(GELU_ACTIVATIONS)}"
        )
    return GELU_ACTIVATIONS[act]
