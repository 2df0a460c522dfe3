"""`alltokens.load(DIR)`: one entry point for our run directories and Hugging Face model directories.

`config.json` decides: our own checkpoints carry a `kind` (see `models.MODEL_KINDS`); Hugging Face ones
carry a `model_type`, which selects a converter module in `io/hf/` (config mapping plus one weight-name
table per family). The result is the capability object for that kind (`pipelines.PIPELINES`): a
`TextModel` for language models, a `SentenceEncoder` for BERT-family encoders, and so on.

A Hugging Face image model's pixel statistics live beside its config, in `preprocessor_config.json`
(`image_mean`, `image_std`): when that file is there they replace the family's defaults, so a DeiT
(ImageNet statistics) is fed what it was trained on and not google/vit's 0.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from alltokens.io.checkpoint import CheckpointError, empty_parameters, load_into, load_weights, read_json
from alltokens.nn.config import ConfigError

PREPROCESSOR_FILE = "preprocessor_config.json"


def apply_preprocessor(cfg: Any, path: Path) -> None:
    """Set the image tower's `image_mean`/`image_std` from a Hugging Face preprocessor file, if any."""
    vision = cfg if getattr(cfg, "kind", None) == "vit" else getattr(cfg, "vision", None)
    if vision is None or not path.is_file():
        return
    raw = read_json(path)
    stats = {key: raw.get(key) for key in ("image_mean", "image_std")} if isinstance(raw, dict) else {}
    for key, value in stats.items():
        if value is None:
            continue
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)
        if not ok or len(value) != vision.num_channels or (key == "image_std" and min(value) <= 0):
            raise ConfigError(
                f"{path}: {key} must be {vision.num_channels} numbers"
                f"{' above 0' if key == 'image_std' else ''}, got {value!r}"
            )
        setattr(vision, key, [float(v) for v in value])


def load_model(path: str | Path, dtype: torch.dtype | None = None) -> tuple[Any, torch.nn.Module]:
    """Read a directory into (our config, model in eval mode). No tokenizer, no pipeline."""
    from alltokens.io.hf import converter_for
    from alltokens.models import build_model, config_from_dict

    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory")
    raw = read_json(directory / "config.json")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{directory / 'config.json'} must hold a JSON object")
    state = load_weights(directory)
    if "kind" in raw:
        cfg = config_from_dict(raw)
    elif "model_type" in raw:
        conv = converter_for(raw["model_type"], directory / "config.json")
        cfg = conv.config_from_hf(raw)
        apply_preprocessor(cfg, directory / PREPROCESSOR_FILE)
        state = conv.state_dict_from_hf(state, cfg)
    else:
        raise ConfigError(
            f"{directory / 'config.json'} has neither our 'kind' nor a Hugging Face 'model_type'"
        )
    if "kind" in raw:  # the file's tensors become the parameters: the weights are held once
        with empty_parameters():
            model = build_model(cfg)
        load_into(model, state, source=str(directory), assign=True)
    else:  # a converter's transposes and slices are copied into a built model, then freed
        model = build_model(cfg)
        load_into(model, state, source=str(directory))
    if dtype is not None:
        model.to(dtype)
    return cfg, model.eval()


def load(path: str | Path, dtype: torch.dtype | None = None) -> Any:
    """Load a model directory and return the capability object for its kind."""
    from alltokens.pipelines import pipeline_for

    cfg, model = load_model(path, dtype)
    return pipeline_for(cfg, model, Path(path))
