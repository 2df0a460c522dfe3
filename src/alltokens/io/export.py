"""Writing models in other formats: our LMs as Hugging Face directories, and any model we load in ours.

`export_hf`: an LM -> a Hugging Face directory that `transformers` loads as it is.

The family follows from the positions: a rotary LM (RMSNorm, SwiGLU) is written as `llama` (or
`qwen2`, when its only biases are on q, k and v), a learned-position LM (LayerNorm, GELU) as `gpt2`.
Anything else is refused with the switches that do not fit. The directory holds `config.json`,
`model.safetensors` (fp32), `generation_config.json`, and, when the model has a `tokenizer.json`, a
copy of it plus the `tokenizer_config.json` that `AutoTokenizer` needs to find it.

`export_ours`: any directory `load_model` reads (a Hugging Face one included) -> our format: our
`config.json` (with `kind`), `model.safetensors` under our names, and the tokenizer if there is one.
Why: a Hugging Face directory is converted on every load (GPT-2's transposed and fused weights are
copied into a model built in full, about twice the weights at the peak), while ours loads with the
file's tensors as the parameters (docs/benchmarks.md, "Loading memory").
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from alltokens.io.checkpoint import atomic_write, save_weights, write_json
from alltokens.io.hf import gpt2, llama
from alltokens.io.load import load_model
from alltokens.nn.config import ConfigError

EXPORTERS = {"rope": llama, "learned": gpt2}  # our position_embedding -> converter module
SPECIAL_TOKENS = ("bos", "eos", "pad")


def export_hf(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the LM in `model_dir` (ours, or any directory `load_model` reads) to `out_dir`."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists() and out_dir.resolve() == model_dir.resolve():
        raise ValueError(f"export would overwrite its source {model_dir}; choose another --out")
    cfg, model = load_model(model_dir)
    if cfg.kind != "lm":
        raise ConfigError(
            f"{model_dir} holds a model of kind {cfg.kind!r}; only 'lm' exports to transformers"
        )
    converter = EXPORTERS.get(cfg.position_embedding)
    if converter is None:
        raise ConfigError(
            f"{model_dir}: position_embedding {cfg.position_embedding!r} fits no Hugging Face family "
            "(llama needs 'rope', gpt2 needs 'learned')"
        )
    hf_config = converter.config_to_hf(cfg)
    state = converter.state_dict_to_hf(model.state_dict(), cfg)
    write_json(out_dir / "config.json", hf_config)
    save_weights(out_dir, state)
    ids = {f"{name}_token_id": getattr(cfg, f"{name}_token_id") for name in SPECIAL_TOKENS}
    write_json(out_dir / "generation_config.json", {k: v for k, v in ids.items() if v is not None})
    if (model_dir / "tokenizer.json").exists():
        export_tokenizer(model_dir / "tokenizer.json", out_dir, cfg)
    return out_dir


def export_ours(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the model in `model_dir` to `out_dir` in our format (see the module docstring)."""
    from alltokens.tokenizers import load_tokenizer
    from alltokens.tokenizers.text import TOKENIZER_FILE

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists() and out_dir.resolve() == model_dir.resolve():
        raise ValueError(f"export would overwrite its source {model_dir}; choose another --out")
    cfg, model = load_model(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (model_dir / TOKENIZER_FILE).exists():
        load_tokenizer(model_dir).save(out_dir)
    save_weights(out_dir, model.state_dict())
    cfg.save(out_dir / "config.json")  # last: a directory with our config is a complete one
    return out_dir


def export_tokenizer(path: Path, out_dir: Path, cfg: Any) -> None:
    """Copy tokenizer.json and name the fast-tokenizer class and the special tokens beside it."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed files
        raise ValueError(f"{path} is not a readable tokenizer.json: {e}") from None
    atomic_write(out_dir / "tokenizer.json", lambda p: shutil.copyfile(path, p))
    special = {}
    for name in SPECIAL_TOKENS:
        i = getattr(cfg, f"{name}_token_id")
        if i is not None:
            token = tok.id_to_token(i)
            if token is None:
                raise ValueError(f"{name}_token_id {i} is outside the vocabulary of {path}")
            special[f"{name}_token"] = token
    write_json(
        out_dir / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": cfg.max_position_embeddings,
            "clean_up_tokenization_spaces": False,
            **special,
        },
    )
