"""`load_model` holds the weights once for our own format: parameters are built empty and become the
loaded tensors (numbers beside `transformers` in bench/load_memory.py)."""

import subprocess
import sys
import textwrap

import pytest
import torch

from alltokens.io.checkpoint import CheckpointError, empty_parameters, load_into, save_weights
from alltokens.io.load import load_model
from alltokens.models.lm import LM, LMConfig


def small_lm(**overrides) -> LM:
    shape = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4) | overrides
    model = LM(LMConfig(**shape))
    model.init_weights()
    return model


def saved(model: LM, directory) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.cfg.save(directory / "config.json")
    save_weights(directory, model.state_dict())


def test_empty_parameters_are_meta_and_buffers_are_real():
    with empty_parameters():
        model = LM(LMConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4))
    assert all(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers())  # RoPE tables are computed, not loaded
    x = torch.nn.Linear(2, 2)  # the patch is gone outside the block
    assert not x.weight.is_meta


def test_loaded_model_matches_the_saved_one_with_ties_dtype_and_grads(tmp_path):
    model = small_lm()
    saved(model, tmp_path / "run")
    _, loaded = load_model(tmp_path / "run")
    assert not any(p.is_meta for p in loaded.parameters())
    assert loaded.lm_head.weight is loaded.embed.tokens.weight  # tied again after assignment
    assert all(p.requires_grad for p in loaded.parameters())
    ids = torch.randint(0, 96, (2, 7))
    with torch.no_grad():
        assert torch.equal(model.eval()(ids), loaded(ids))


def test_assign_casts_to_the_models_dtype_and_still_refuses_missing_weights(tmp_path):
    state = {k: v.to(torch.bfloat16) for k, v in small_lm().state_dict().items()}
    with empty_parameters():
        model = LM(small_lm().cfg)
    load_into(model, dict(state), assign=True)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    state.pop("core.norm.weight")
    with empty_parameters():
        model = LM(small_lm().cfg)
    with pytest.raises(CheckpointError, match=r"missing weights \[.core.norm.weight.\]"):
        load_into(model, state, assign=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_loading_peaks_at_about_one_copy_of_the_weights(tmp_path):
    """In a fresh process: the peak resident memory that loading adds stays under 1.4x the weights
    (holding the state dict and a freshly built model together would need 2x)."""
    model = small_lm(hidden_size=512, num_hidden_layers=6, intermediate_size=1536, num_attention_heads=8)
    saved(model, tmp_path / "run")
    weights = sum(p.numel() * p.element_size() for p in model.parameters())  # ~ 60 MB
    del model
    script = textwrap.dedent(
        f"""
        import torch
        from alltokens.io.load import load_model

        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        before = status("VmRSS:")
        open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark to now
        load_model({str(tmp_path / "run")!r})
        print(status("VmHWM:") - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    added = int(out.stdout.split()[-1])
    assert added < 1.4 * weights, f"loading added {added / 1e6:.0f} MB for {weights / 1e6:.0f} MB of weights"
