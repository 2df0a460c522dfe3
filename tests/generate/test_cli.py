"""`alltokens generate` on a saved tiny model: prints what the library generates."""

from __future__ import annotations

import pytest
import torch

import alltokens
from alltokens.cli import main
from alltokens.io.checkpoint import save_weights
from alltokens.models.lm import LM, LMConfig
from alltokens.tokenizers import byte_tokenizer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tok = byte_tokenizer()
    torch.manual_seed(0)
    cfg = LMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=tok.vocab_size)
    model = LM(cfg)
    model.init_weights(std=0.3)
    out = tmp_path_factory.mktemp("run")
    cfg.save(out / "config.json")
    save_weights(out, model.state_dict())
    tok.save(out)
    return out


def generate(run_dir, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["generate", "--model", str(run_dir), "Once upon", "--max-new-tokens", "12", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_prints_the_completion(run_dir, capsys):
    want = alltokens.load(run_dir).generate("Once upon", max_new_tokens=12, temperature=0)
    assert generate(run_dir, capsys, "--temperature", "0") == (0, want + "\n", "")


def test_stream_prints_the_same_text(run_dir, capsys):
    args = ("--temperature", "0.9", "--top-k", "20", "--seed", "5", "--stop", "zz")
    code, out, _ = generate(run_dir, capsys, *args)
    assert code == 0
    assert generate(run_dir, capsys, *args, "--stream") == (0, out, "")


def test_a_bad_value_is_one_line_and_exit_code_2(run_dir, capsys):
    code, out, err = generate(run_dir, capsys, "--top-p", "1.5")
    assert (code, out) == (2, "")
    assert err == "alltokens: error: top_p must be in (0, 1], got 1.5\n"
