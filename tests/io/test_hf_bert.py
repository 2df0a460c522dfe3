"""BERT import and export: the name table both ways, and hidden-state parity with `transformers`."""

from __future__ import annotations

import pytest
import torch

from alltokens.io.checkpoint import CheckpointError, load_weights, save_weights
from alltokens.io.hf import bert
from alltokens.io.load import load_model
from alltokens.models.encoder import Encoder, EncoderConfig
from alltokens.nn.config import ConfigError

transformers = pytest.importorskip("transformers")

# unusual shapes: 3 heads of 16, an MLP that is not 4x, 3 token types
HF_CONFIG = dict(
    vocab_size=99,
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=72,
    max_position_embeddings=40,
    type_vocab_size=3,
    hidden_act="gelu",
    layer_norm_eps=1e-12,
    pad_token_id=0,
)
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids, a right-padding mask and token types for 3 rows of different lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, HF_CONFIG["vocab_size"], (3, 13), generator=g)
    mask = torch.ones(3, 13, dtype=torch.bool)
    mask[1, 9:] = False
    mask[2, 4:] = False
    ids[~mask] = 0
    types = torch.randint(0, HF_CONFIG["type_vocab_size"], (3, 13), generator=g)
    return ids, mask, types


def hf_dir(tmp_path, model_class=None):
    model = (model_class or transformers.BertModel)(transformers.BertConfig(**HF_CONFIG)).eval()
    model.save_pretrained(tmp_path)
    return model


def test_config_maps_every_field():
    cfg = bert.config_from_hf(HF_CONFIG)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (48, 2, 3)
    assert (cfg.mlp_size, cfg.vocab_size, cfg.type_vocab_size, cfg.max_position_embeddings) == (72, 99, 3, 40)
    assert (cfg.mlp, cfg.norm_eps, cfg.norm_position, cfg.causal) == ("gelu", 1e-12, "post", False)
    assert bert.config_from_hf(bert.config_to_hf(cfg)) == cfg
    assert bert.config_from_hf({**HF_CONFIG, "hidden_act": "gelu_new"}).mlp == "gelu_tanh"


def test_name_table_covers_bert_both_ways(random_weights):
    cfg = bert.config_from_hf(HF_CONFIG)
    ours = random_weights(Encoder(cfg)).state_dict()
    hf_names = set(
        transformers.BertModel(transformers.BertConfig(**HF_CONFIG), add_pooling_layer=False).state_dict()
    )
    exported = bert.state_dict_to_hf(ours, cfg)
    assert set(exported) == hf_names - set(BUFFERS)
    back = bert.state_dict_from_hf(exported, cfg)
    assert set(back) == set(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)
    # qkv is [query | key | value] along the output dimension
    C = cfg.hidden_size
    key = exported["encoder.layer.1.attention.self.key.weight"]
    assert torch.equal(key, ours["core.blocks.1.attn.qkv.weight"][C : 2 * C])


def test_random_bert_matches_transformers(tmp_path, random_weights):
    """Ours (random, exported) in transformers, then read back from its save_pretrained directory."""
    cfg = bert.config_from_hf(HF_CONFIG)
    ours = random_weights(Encoder(cfg))
    hf = transformers.BertModel(transformers.BertConfig(**HF_CONFIG)).eval()
    result = hf.load_state_dict(bert.state_dict_to_hf(ours.state_dict(), cfg), strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith(("pooler.", *BUFFERS)) for k in result.missing_keys)
    hf.save_pretrained(tmp_path)
    loaded_cfg, loaded = load_model(tmp_path)
    assert loaded_cfg == cfg
    ids, mask, types = inputs()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long(), token_type_ids=types).last_hidden_state
        got = loaded(ids, mask, types)
        direct = ours(ids, mask, types)
    assert expected.abs().mean() > 0.1  # not a degenerate comparison
    assert (got - expected)[mask].abs().max().item() <= 1e-4
    assert torch.equal(got, direct)


def test_task_checkpoint_with_prefix_pooler_and_heads(tmp_path):
    """BertForPreTraining saves `bert.`-prefixed names plus a pooler and two heads; all are handled."""
    hf = hf_dir(tmp_path, transformers.BertForPreTraining)
    names = set(load_weights(tmp_path))
    assert any(n.startswith("bert.") for n in names) and any(n.startswith("cls.") for n in names)
    _, ours = load_model(tmp_path)
    ids, mask, types = inputs(1)
    with torch.no_grad():
        expected = hf.bert(input_ids=ids, attention_mask=mask.long(), token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
    assert (got - expected)[mask].abs().max().item() <= 1e-4


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_act": "relu"}, "hidden_act"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"is_decoder": True}, "is_decoder"),
        ({"hidden_size": None}, "hidden_size"),
    ],
)
def test_unsupported_config_is_refused(change, message):
    hf = {k: v for k, v in {**HF_CONFIG, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        bert.config_from_hf(hf)


def test_export_refuses_a_non_bert_encoder():
    with pytest.raises(ConfigError, match="norm_position='pre'"):
        bert.config_to_hf(EncoderConfig(norm_position="pre", final_norm=True))


def _rewrite_weights(directory, edit) -> None:
    state = dict(load_weights(directory))
    edit(state)
    save_weights(directory, state)


def test_checkpoint_missing_part_of_qkv(tmp_path):
    hf_dir(tmp_path)
    _rewrite_weights(tmp_path, lambda s: s.pop("encoder.layer.1.attention.self.value.bias"))
    with pytest.raises(CheckpointError, match=r"attention\.self\.value\.bias"):
        load_model(tmp_path)


def test_checkpoint_missing_a_layer_weight(tmp_path):
    hf_dir(tmp_path)
    _rewrite_weights(tmp_path, lambda s: s.pop("encoder.layer.0.output.dense.weight"))
    with pytest.raises(CheckpointError, match=r"missing weights .*core\.blocks\.0\.mlp\.proj\.weight"):
        load_model(tmp_path)


def test_checkpoint_with_an_unknown_weight(tmp_path):
    hf_dir(tmp_path)
    _rewrite_weights(tmp_path, lambda s: s.update({"encoder.layer.0.adapter.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected weights .*adapter"):
        load_model(tmp_path)
