"""Our LMs exported to Hugging Face: transformers loads them with the same logits, and so do we."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from alltokens.cli import main
from alltokens.io.checkpoint import load_weights, save_weights
from alltokens.io.export import export_hf, export_ours
from alltokens.io.hf import gpt2, llama
from alltokens.io.load import load_model
from alltokens.models.lm import LM, LMConfig
from alltokens.nn.config import ConfigError
from alltokens.tokenizers import load_tokenizer

transformers = pytest.importorskip("transformers")

SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>"]
TEXT = ["the cat sat on the mat", "a dog ran in the park", "hello world, hello tokens"] * 4


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory) -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=120, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXT, trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return str(path)


def write_checkpoint(directory, cfg: LMConfig, randomize, tokenizer: str | None = None) -> LM:
    model = randomize(LM(cfg))
    directory.mkdir(parents=True, exist_ok=True)
    cfg.save(directory / "config.json")
    save_weights(directory, model.state_dict())
    if tokenizer:
        shutil.copyfile(tokenizer, directory / "tokenizer.json")
    return model


LLAMA_LIKE = dict(
    position_embedding="rope",
    norm="rmsnorm",
    mlp="swiglu",
    vocab_size=120,
    num_hidden_layers=2,
    max_position_embeddings=64,
)
GPT2_LIKE = dict(
    position_embedding="learned",
    norm="layernorm",
    vocab_size=120,
    num_hidden_layers=2,
    max_position_embeddings=64,
)
CASES = {
    # qkv biases only: written as qwen2
    "qwen2": ("qwen2", dict(LLAMA_LIKE, hidden_size=48, num_attention_heads=6, num_key_value_heads=2,
                            qkv_bias=True, tie_word_embeddings=False, rope_theta=30000.0)),
    # odd head_dim and an MLP bias: llama, with zeros for the o_proj bias it lacks
    "llama": ("llama", dict(LLAMA_LIKE, hidden_size=42, num_attention_heads=3, head_dim=10, qkv_bias=True,
                            mlp_bias=True, intermediate_size=52,
                            rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
    # no biases at all, tied: GPT-2 gets zero biases on every Conv1D and LayerNorm
    "gpt2-nobias": ("gpt2", dict(GPT2_LIKE, hidden_size=45, num_attention_heads=5, mlp="gelu_tanh",
                                 qkv_bias=False, out_bias=False, mlp_bias=False, norm_bias=False)),
    "gpt2-untied": ("gpt2", dict(GPT2_LIKE, hidden_size=48, num_attention_heads=3, mlp="gelu", qkv_bias=True,
                                 out_bias=True, mlp_bias=True, tie_word_embeddings=False, intermediate_size=80)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_loads_in_transformers_and_back_with_the_same_logits(
    name, tmp_path, random_weights, tokenizer_json
):
    model_type, fields = CASES[name]
    cfg = LMConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2, **fields)
    ours = write_checkpoint(tmp_path / "ours", cfg, random_weights, tokenizer_json)
    export_hf(tmp_path / "ours", tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == model_type

    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 19), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ours(ids)
        assert (hf(ids).logits - expected).abs().max().item() <= 1e-4
        _, again = load_model(tmp_path / "hf")
        torch.testing.assert_close(again(ids), expected, rtol=0, atol=1e-6)


def test_exported_tokenizer_and_generation_config_load_in_transformers(
    tmp_path, random_weights, tokenizer_json
):
    cfg = LMConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2, **CASES["qwen2"][1])
    write_checkpoint(tmp_path / "ours", cfg, random_weights, tokenizer_json)
    export_hf(tmp_path / "ours", tmp_path / "hf")
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == tuple(SPECIALS)
    text = "the cat ran in the park"
    assert tok(text)["input_ids"] == Tokenizer.from_file(tokenizer_json).encode(text).ids
    gen = transformers.GenerationConfig.from_pretrained(tmp_path / "hf")
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (0, 1, 2)


def test_export_without_tokenizer_writes_the_model_only(tmp_path, random_weights):
    write_checkpoint(tmp_path / "ours", LMConfig(**CASES["gpt2-untied"][1]), random_weights)
    export_hf(tmp_path / "ours", tmp_path / "hf")
    assert {p.name for p in (tmp_path / "hf").iterdir()} == {
        "config.json",
        "model.safetensors",
        "generation_config.json",
    }


def test_special_token_outside_the_tokenizer_is_refused(tmp_path, random_weights, tokenizer_json):
    cfg = LMConfig(eos_token_id=500, **dict(CASES["gpt2-untied"][1], vocab_size=600))
    write_checkpoint(tmp_path / "ours", cfg, random_weights, tokenizer_json)
    with pytest.raises(ValueError, match="eos_token_id 500"):
        export_hf(tmp_path / "ours", tmp_path / "hf")


def test_export_onto_its_source_is_refused(tmp_path, random_weights):
    write_checkpoint(tmp_path / "ours", LMConfig(**CASES["gpt2-untied"][1]), random_weights)
    with pytest.raises(ValueError, match="overwrite its source"):
        export_hf(tmp_path / "ours", tmp_path / "ours")


@pytest.mark.parametrize(
    ("converter", "change", "named"),
    [
        (gpt2, dict(GPT2_LIKE, mlp="swiglu"), "mlp='swiglu'"),
        (
            gpt2,
            dict(GPT2_LIKE, mlp="gelu", num_attention_heads=4, num_key_value_heads=2),
            "num_key_value_heads=2",
        ),
        (gpt2, dict(GPT2_LIKE, mlp="gelu", norm_position="post"), "norm_position='post'"),
        (llama, dict(LLAMA_LIKE, norm="layernorm"), "norm='layernorm'"),
        (llama, dict(LLAMA_LIKE, mlp="gelu", final_norm=False), "final_norm=False"),
        (llama, dict(LLAMA_LIKE, causal=False), "causal=False"),
        (llama, dict(LLAMA_LIKE, num_attention_heads=3, head_dim=8), "multiple of num_attention_heads 3"),
    ],
)
def test_configs_a_family_cannot_express_are_refused_by_field(converter, change, named):
    with pytest.raises(ConfigError, match=named):
        converter.config_to_hf(LMConfig(**{"hidden_size": 32, "num_attention_heads": 4, **change}))


def test_positions_fitting_no_family_are_refused(tmp_path, random_weights):
    cfg = LMConfig(**dict(LLAMA_LIKE, hidden_size=32, num_attention_heads=4, position_embedding="none"))
    write_checkpoint(tmp_path / "ours", cfg, random_weights)
    with pytest.raises(ConfigError, match="position_embedding 'none'"):
        export_hf(tmp_path / "ours", tmp_path / "hf")


def test_cli_exports_and_reports_errors_in_one_line(tmp_path, random_weights, capsys):
    write_checkpoint(tmp_path / "ours", LMConfig(**CASES["qwen2"][1]), random_weights)
    assert main(["export", "hf", "--model", str(tmp_path / "ours"), "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "model.safetensors").exists()
    assert str(tmp_path / "hf") in capsys.readouterr().out
    assert main(["export", "hf", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "missing" in capsys.readouterr().err


def test_weights_the_family_has_no_name_for_are_refused(random_weights):
    cfg = LMConfig(**dict(LLAMA_LIKE, hidden_size=32, num_attention_heads=4))
    state = {**LM(cfg).state_dict(), "core.blocks.0.adapter.weight": torch.zeros(2, 2)}
    with pytest.raises(
        ConfigError, match=r"no place in a Llama checkpoint: \['core\.blocks\.0\.adapter\.weight'\]"
    ):
        llama.state_dict_to_hf(state, cfg)


@pytest.mark.parametrize("name", ["llama", "gpt2-untied"])
def test_a_hugging_face_directory_exported_to_ours_loads_the_same(
    name, tmp_path, random_weights, tokenizer_json
):
    """HF (here written by export_hf) -> ours: our config, our weight names, the tokenizer, same logits."""
    cfg = LMConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2, **CASES[name][1])
    ours = write_checkpoint(tmp_path / "ours", cfg, random_weights, tokenizer_json)
    export_hf(tmp_path / "ours", tmp_path / "hf")
    assert main(["export", "ours", "--model", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 0
    assert json.loads((tmp_path / "back" / "config.json").read_text())["kind"] == "lm"
    _, imported = load_model(tmp_path / "hf")  # llama gains the zero o_proj bias it was written with
    saved, expected = load_weights(tmp_path / "back"), imported.state_dict()
    assert all(torch.equal(saved[k], expected[k]) for k in saved) and set(expected) - set(saved) <= {
        "lm_head.weight"  # tied: stored once
    }
    ids = torch.randint(0, cfg.vocab_size, (2, 19), generator=torch.Generator().manual_seed(1))
    _, back = load_model(tmp_path / "back")
    with torch.no_grad():
        torch.testing.assert_close(back(ids), ours(ids), rtol=0, atol=1e-6)
    text = "the cat sat"
    assert load_tokenizer(tmp_path / "back").encode(text) == load_tokenizer(tmp_path / "ours").encode(text)
    with pytest.raises(ValueError, match="overwrite its source"):
        export_ours(tmp_path / "back", tmp_path / "back")
