"""`Encoder`: a bidirectional core with masked padding, pooling, and its config."""

from __future__ import annotations

import pytest
import torch

from alltokens.io.checkpoint import save_weights
from alltokens.io.load import load_model
from alltokens.models import build_model, config_from_dict
from alltokens.models.encoder import Encoder, EncoderConfig
from alltokens.nn.config import ConfigError


def tiny(**overrides) -> EncoderConfig:
    fields = dict(
        vocab_size=50,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=40,
        max_position_embeddings=16,
        type_vocab_size=2,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    return EncoderConfig(**{**fields, **overrides})


def model(**overrides) -> Encoder:
    torch.manual_seed(0)
    m = Encoder(tiny(**overrides))
    m.init_weights(std=0.3)  # large weights, so that a wrong mask or position moves the output a lot
    return m.eval()


def test_config_round_trips_through_json_and_builds_by_kind(tmp_path):
    cfg = tiny(pooling="cls", normalize=False)
    cfg.save(tmp_path / "config.json")
    again = EncoderConfig.load(tmp_path / "config.json")
    assert again == cfg
    assert config_from_dict(cfg.to_dict()) == cfg
    assert isinstance(build_model(cfg), Encoder)


def test_defaults_are_bert():
    cfg = EncoderConfig()
    assert (cfg.norm, cfg.norm_position, cfg.final_norm, cfg.mlp) == ("layernorm", "post", False, "gelu")
    assert cfg.position_embedding == "learned" and not cfg.causal
    assert cfg.qkv_bias and cfg.out_bias and cfg.mlp_bias


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"pooling": "max"}, "pooling"),
        ({"pad_token_id": 50}, "pad_token_id"),
    ],
)
def test_bad_config_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**overrides)


def test_causal_tower_pools_its_last_real_token_whatever_the_padding():
    """CLIP's text tower: causal, pre-norm, no token types, pooled at the end-of-text token."""
    m = model(
        causal=True,
        pooling="last",
        type_vocab_size=0,
        embedding_norm=False,
        norm_position="pre",
        final_norm=True,
        normalize=False,
    )
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        pooled = m.embed_ids(ids, mask)  # (2, C)
        alone = m.embed_ids(ids[:1, :3])  # the first row without its padding
        hidden = m(ids, mask)
    torch.testing.assert_close(pooled[0], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden[0, :3], hidden[1, :3], atol=1e-5, rtol=0)  # later tokens unseen
    assert (pooled[0] - pooled[1]).abs().max() > 1e-3


def test_attention_is_bidirectional():
    m = model()
    ids = torch.tensor([[5, 6, 7, 8]])
    changed = ids.clone()
    changed[0, -1] = 9
    with torch.no_grad():
        a, b = m(ids), m(changed)
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-3  # the first token sees the last one


def test_padding_is_invisible():
    """A sentence embeds the same alone and right-padded next to a longer one."""
    m = model()
    short, long = [5, 6, 7], [8, 9, 10, 11, 12, 13]
    ids = torch.tensor([short + [0, 0, 0], long])
    mask = torch.tensor([[True] * 3 + [False] * 3, [True] * 6])
    with torch.no_grad():
        batched = m.embed_ids(ids, mask)
        alone = m.embed_ids(torch.tensor([short]))
        unmasked = m.embed_ids(ids)[0]
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=1e-5)
    assert (unmasked - alone[0]).abs().max() > 1e-3  # the mask is what makes the difference


def test_token_types_change_the_output():
    m = model()
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        a = m(ids)
        b = m(ids, token_type_ids=torch.tensor([[0, 1, 1]]))
    assert (a - b).abs().max() > 1e-3


def test_pooling_and_normalisation():
    ids = torch.tensor([[5, 6, 7, 0]])
    mask = torch.tensor([[True, True, True, False]])
    m = model(normalize=False)
    with torch.no_grad():
        h = m(ids, mask)  # (1, 4, C)
        torch.testing.assert_close(m.embed_ids(ids, mask), h[:, :3].mean(1))
        unit = model().embed_ids(ids, mask)
        cls = model(pooling="cls", normalize=False).embed_ids(ids, mask)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(1))
    torch.testing.assert_close(unit, torch.nn.functional.normalize(h[:, :3].mean(1), dim=-1))
    torch.testing.assert_close(cls, h[:, 0])


def test_init_weights_zeroes_the_pad_row_and_sets_norms():
    m = model(pad_token_id=3)
    assert torch.all(m.embed.tokens.weight[3] == 0)
    assert torch.all(m.embed.norm.weight == 1) and torch.all(m.embed.norm.bias == 0)
    assert m.embed.tokens.weight[4].abs().sum() > 0


def test_save_and_load_round_trip(tmp_path):
    m = model()
    m.cfg.save(tmp_path / "config.json")
    save_weights(tmp_path, m.state_dict())
    cfg, loaded = load_model(tmp_path)
    assert cfg == m.cfg
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_ids(ids), m.embed_ids(ids))


def test_a_few_steps_pull_two_sentences_together():
    """Gradients reach every part: a contrastive-style objective improves quickly."""
    m = model().train()
    a, b = torch.tensor([[5, 6, 7]]), torch.tensor([[20, 21, 22, 23]])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    cosine = lambda: (m.embed_ids(a) * m.embed_ids(b)).sum()
    start = cosine().item()
    for _ in range(20):
        opt.zero_grad()
        (-cosine()).backward()
        opt.step()
    assert cosine().item() > start + 0.1
    assert all(p.grad is not None for p in m.parameters())
