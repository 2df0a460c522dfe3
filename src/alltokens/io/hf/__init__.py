"""Hugging Face import and export: one converter module per family.

A converter module provides `MODEL_TYPES` (the HF `model_type` values it reads), `config_from_hf(dict)`
-> our config, `state_dict_from_hf(state, cfg)` (HF names -> ours), and for decoder families also
`config_to_hf(cfg)` and `state_dict_to_hf(state, cfg)` for export.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from alltokens.nn.config import ConfigError

# model_type -> converter module (relative to this package)
FAMILIES = {
    "gpt2": "gpt2",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "bert": "bert",
    "vit": "vit",
    "clip": "clip",
}


def converter_for(model_type: str, source: Path | str = "config.json") -> ModuleType:
    if model_type not in FAMILIES:
        raise ConfigError(
            f"{source}: unsupported model_type {model_type!r}; supported: {', '.join(sorted(FAMILIES))}"
        )
    return importlib.import_module(f"alltokens.io.hf.{FAMILIES[model_type]}")
