"""Broken or unsafe model directories are refused with an error that names the problem."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from alltokens.io.checkpoint import CheckpointError, save_weights
from alltokens.io.load import load_model
from alltokens.models.lm import LM, LMConfig
from alltokens.nn.config import ConfigError

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny Llama saved by transformers, to be copied and broken by each test."""
    config = transformers.LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=40, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("hf")
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture
def broken(hf_dir, tmp_path):
    """A fresh copy of the tiny Llama, plus functions to rewrite its config and weights."""
    shutil.copytree(hf_dir, tmp_path, dirs_exist_ok=True)

    class Broken:
        path = tmp_path

        def config(self, **change):
            data = json.loads((tmp_path / "config.json").read_text())
            (tmp_path / "config.json").write_text(json.dumps({**data, **change}))

        def weights(self, edit):
            state = load_file(tmp_path / "model.safetensors")
            edit(state)
            save_file(state, tmp_path / "model.safetensors")

    return Broken()


def test_the_intact_copy_loads(broken):
    cfg, _ = load_model(broken.path)
    assert cfg.kv_heads == 2


def test_pickle_weights_are_refused(broken):
    weights = broken.path / "model.safetensors"
    weights.rename(broken.path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(broken.path)


def test_unknown_model_type_is_named(broken):
    broken.config(model_type="gemma")
    with pytest.raises(ConfigError, match="unsupported model_type 'gemma'"):
        load_model(broken.path)


def test_config_without_kind_or_model_type_is_refused(broken):
    data = json.loads((broken.path / "config.json").read_text())
    del data["model_type"]
    (broken.path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="neither"):
        load_model(broken.path)


def test_missing_config_json_is_named(broken):
    (broken.path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json not found"):
        load_model(broken.path)


def test_truncated_safetensors_is_refused(broken):
    weights = broken.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        load_model(broken.path)


def test_config_and_weights_of_different_shapes_are_refused(broken):
    broken.config(hidden_size=48)
    with pytest.raises(CheckpointError, match=r"wrong shapes.*embed\.tokens\.weight \(50, 32\)"):
        load_model(broken.path)


def test_our_checkpoint_with_a_mismatched_config_is_refused(tmp_path):
    cfg = LMConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    save_weights(tmp_path, LM(cfg).state_dict())
    LMConfig(vocab_size=41, hidden_size=32, num_hidden_layers=1, num_attention_heads=4).save(
        tmp_path / "config.json"
    )
    with pytest.raises(CheckpointError, match=r"embed\.tokens\.weight \(40, 32\) \(model needs \(41, 32\)\)"):
        load_model(tmp_path)


def test_a_missing_part_of_a_fused_weight_is_named(broken):
    broken.weights(lambda s: s.pop("model.layers.0.self_attn.k_proj.weight"))
    with pytest.raises(CheckpointError, match=r"lacks \['model\.layers\.0\.self_attn\.k_proj\.weight'\]"):
        load_model(broken.path)


def test_parts_that_cannot_be_fused_are_named(broken):
    broken.weights(lambda s: s.update({"model.layers.0.mlp.up_proj.weight": torch.zeros(40, 33)}))
    with pytest.raises(CheckpointError, match="cannot be fused into our core.blocks.0.mlp.fc.weight"):
        load_model(broken.path)


def test_missing_and_unknown_weights_are_named(broken):
    broken.weights(lambda s: s.update({"model.layers.0.mystery.weight": s.pop("lm_head.weight")}))
    with pytest.raises(CheckpointError, match=r"missing weights \['lm_head\.weight'\].*mystery"):
        load_model(broken.path)
