"""The core's contracts: config round trip, KV cache == full forward, masks, GQA, cross-attention."""

import json

import pytest
import torch
import torch.nn.functional as F

from alltokens.models.lm import LM, LMConfig
from alltokens.nn import ConfigError, Transformer, TransformerConfig
from alltokens.nn.attention import causal_mask

torch.manual_seed(0)


def tiny_lm(**kw) -> LM:
    base = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=6, vocab_size=97)
    cfg = LMConfig(**{**base, **kw})
    model = LM(cfg)
    model.init_weights()
    return model.eval()


VARIANTS = {
    "llama-gqa": dict(num_key_value_heads=2, rope_theta=50000.0),
    "mqa": dict(num_key_value_heads=1),
    "gpt2-like": dict(
        norm="layernorm", mlp="gelu_tanh", position_embedding="learned", qkv_bias=True, out_bias=True
    ),
    "bert-like-post": dict(norm="layernorm", norm_position="post", final_norm=False, mlp="gelu"),
    "untied-headdim": dict(tie_word_embeddings=False, head_dim=16),
    "llama3-rope": dict(
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        }
    ),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_kv_cache_matches_full_forward(variant):
    model = tiny_lm(**VARIANTS[variant])
    ids = torch.randint(0, 97, (3, 11))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache(3, 16)
        chunks = [
            model(ids[:, :5], cache=cache),
            model(ids[:, 5:6], cache=cache),
            model(ids[:, 6:], cache=cache),
        ]
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 11


def test_select_gives_the_logits_of_the_marked_positions_only():
    model = tiny_lm(**VARIANTS["llama-gqa"])
    ids = torch.randint(0, 97, (3, 11))
    select = torch.rand(3, 11) < 0.3  # (B, T)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, select=select), model(ids)[select])  # (N, V)


def test_config_round_trips_through_json(tmp_path):
    cfg = LMConfig(hidden_size=64, num_key_value_heads=2, rope_scaling={"rope_type": "linear", "factor": 2.0})
    cfg.save(tmp_path / "config.json")
    assert LMConfig.load(tmp_path / "config.json") == cfg
    assert json.loads((tmp_path / "config.json").read_text())["kind"] == "lm"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden_size=50, num_attention_heads=4), "not divisible"),
        (dict(num_attention_heads=6, num_key_value_heads=4, hidden_size=48), "multiple"),
        (dict(hidden_size=0), "positive"),
    ],
)
def test_impossible_shapes_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TransformerConfig(**kwargs)


def test_unknown_config_field_is_named():
    with pytest.raises(ConfigError, match="n_embd"):
        LMConfig.from_dict({"kind": "lm", "n_embd": 64})


def test_attention_equals_the_textbook_formula():
    """Single head, no positions: softmax(q k^T / sqrt(D)) v with a causal mask, written out by hand."""
    cfg = TransformerConfig(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=1, position_embedding="none"
    )
    attn = Transformer(cfg).blocks[0].attn
    x = torch.randn(1, 5, 8)
    q, k, v = attn.qkv(x).split(8, dim=-1)
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    scores = scores.masked_fill(~causal_mask(5, 5), float("-inf"))
    expected = attn.proj(F.softmax(scores, dim=-1) @ v)
    torch.testing.assert_close(attn(x), expected, atol=1e-6, rtol=1e-5)


def test_padding_mask_hides_pad_tokens():
    """A bidirectional core with a padding mask gives real tokens the same output as the unpadded input."""
    cfg = TransformerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, causal=False)
    core = Transformer(cfg).eval()
    x = torch.randn(1, 6, 32)
    padded = torch.cat([x, torch.randn(1, 3, 32)], dim=1)
    keep = torch.tensor([[True] * 6 + [False] * 3])
    out = core(padded, mask=keep[:, None, None, :])
    torch.testing.assert_close(out[:, :6], core(x), atol=1e-5, rtol=1e-5)


def test_cross_attention_uses_the_context():
    cfg = TransformerConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, cross_attention=True, context_size=20
    )
    core = Transformer(cfg).eval()
    core.init_weights()
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 20)
    a = core(x, context=ctx)
    b = core(x, context=ctx + 1.0)
    assert a.shape == (2, 5, 32)
    assert not torch.allclose(a, b)
    # a context mask that hides the last 3 context tokens makes them irrelevant
    keep = torch.tensor([[True] * 4 + [False] * 3] * 2)
    changed = ctx.clone()
    changed[:, 4:] += 5.0
    torch.testing.assert_close(
        core(x, context=ctx, context_mask=keep), core(x, context=changed, context_mask=keep)
    )


def test_cache_overflow_is_an_error():
    model = tiny_lm()
    cache = model.new_cache(1, 4)
    with pytest.raises(ValueError, match="do not fit"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)
