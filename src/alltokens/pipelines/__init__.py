"""Capability objects: a loaded model plus what it needs to take and give raw data (text, images...).

`pipeline_for` picks the object for a config `kind`: `TextModel` (generate, stream, embed) for language
models, `SentenceEncoder` (embed) for BERT-family encoders. Later kinds add their entry here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn


def pipeline_for(cfg: Any, model: nn.Module, directory: Path) -> Any:
    from alltokens.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(directory)
    if cfg.kind == "lm":
        from alltokens.pipelines.text import TextModel

        return TextModel(model, tokenizer)
    if cfg.kind == "encoder":
        from alltokens.pipelines.embedding import SentenceEncoder

        return SentenceEncoder(model, tokenizer)
    if cfg.kind == "clip":
        from alltokens.pipelines.clip import CLIPModel

        return CLIPModel(model, tokenizer)
    if cfg.kind == "vlm":
        from alltokens.pipelines.vlm import VisionLanguageModel

        return VisionLanguageModel(model, tokenizer)
    raise ValueError(f"no capability object for model kind {cfg.kind!r}")
