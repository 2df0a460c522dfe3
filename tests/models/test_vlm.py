"""The VLM composition: config, image tokens, splicing at the placeholders, and generation through the
shared engine with image features on the prefill only."""

from __future__ import annotations

import pytest
import torch

from alltokens.generate.engine import generate_ids
from alltokens.generate.sampling import SamplingSettings
from alltokens.io.checkpoint import save_weights, write_json
from alltokens.io.load import load_model
from alltokens.models import config_from_dict
from alltokens.models.lm import LMConfig
from alltokens.models.vit import ViTConfig
from alltokens.models.vlm import VLM, VLMConfig
from alltokens.nn.config import ConfigError

IMAGE = 60  # the placeholder id of these tests' 64-id vocabulary


def tiny_config(**overrides) -> VLMConfig:
    vision = ViTConfig(
        image_size=16, patch_size=4, hidden_size=24, num_hidden_layers=3, num_attention_heads=2
    )
    lm = LMConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=96
    )
    return VLMConfig(**{"vision": vision, "lm": lm, "image_token_id": IMAGE, **overrides})


@pytest.fixture
def vlm() -> VLM:
    torch.manual_seed(0)
    model = VLM(tiny_config())
    model.init_weights()
    return model.eval()


def test_config_round_trip_and_errors(tmp_path, vlm):
    cfg = vlm.cfg
    assert config_from_dict(cfg.to_dict()) == cfg
    write_json(tmp_path / "config.json", cfg.to_dict())
    save_weights(tmp_path, vlm.state_dict())
    loaded_cfg, loaded = load_model(tmp_path)
    assert loaded_cfg == cfg
    ids = torch.tensor([[1, IMAGE, 2]])
    image_embeds = torch.randn(1, cfg.lm.hidden_size)
    torch.testing.assert_close(loaded(ids, image_embeds), vlm(ids, image_embeds))
    with pytest.raises(ConfigError, match="image_token_id 64"):
        tiny_config(image_token_id=64)
    with pytest.raises(ConfigError, match="feature_layer"):
        tiny_config(feature_layer=-4)
    with pytest.raises(ConfigError, match="pool"):
        tiny_config(pool=0)


def test_tiling_settings_round_trip_and_are_checked():
    cfg = tiny_config(max_tiles=4, max_image_tokens=48)
    assert config_from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["max_tiles"] == 4
    assert tiny_config().max_tiles == 1 and tiny_config().max_image_tokens is None  # tiling off by default
    with pytest.raises(ConfigError, match="max_tiles must be >= 1"):
        tiny_config(max_tiles=0)
    with pytest.raises(ConfigError, match="max_image_tokens 15 is too small for one tile of 16 tokens"):
        tiny_config(max_image_tokens=15)


@pytest.mark.parametrize(
    ("drop_cls", "pool", "per_tile"), [(True, 1, 16), (False, 1, 17), (True, 2, 4), (False, 3, 5)]
)
def test_layouts_count_tiles_in_the_models_own_tokens(drop_cls, pool, per_tile):
    cfg = tiny_config(drop_cls=drop_cls, pool=pool, max_tiles=4)
    assert cfg.image_tokens == per_tile  # one count: the tiles' and the prompt's agree
    wide = cfg.layout(64, 16)  # 4:1 -> a row of 4 tiles of 16px, plus the overview
    assert (wide.rows, wide.cols, wide.overview, wide.pool) == (1, 4, True, pool)
    assert wide.tokens_per_tile == per_tile and wide.image_tokens == 5 * per_tile
    assert cfg.layout(16, 16).tiles == 1  # no bigger than a tile: one tile, no overview
    capped = cfg.layout(64, 16, max_image_tokens=3 * per_tile)  # a request's budget
    assert capped.image_tokens <= 3 * per_tile < wide.image_tokens
    default_cap = tiny_config(drop_cls=drop_cls, pool=pool, max_tiles=4, max_image_tokens=per_tile)
    assert default_cap.layout(64, 16).tiles == 1 and default_cap.layout(64, 16, 5 * per_tile) == wide
    with pytest.raises(ValueError, match=f"budget of {per_tile - 1} is too small for one tile"):
        cfg.layout(64, 16, max_image_tokens=per_tile - 1)


def test_image_tokens_read_the_chosen_layer_without_cls(vlm):
    pixels = torch.randn(2, 3, 16, 16)
    tokens = vlm.image_tokens(pixels)
    assert vlm.cfg.image_tokens == 16 and tokens.shape == (2, 16, 32)
    inner = vlm.vision(pixels, depth=2)[:, 1:]  # block 2 of 3 is the second-to-last; [CLS] dropped
    torch.testing.assert_close(tokens, vlm.projector(inner))
    last = VLM(tiny_config(feature_layer=-1, drop_cls=False))
    last.load_state_dict(vlm.state_dict())
    assert last.cfg.image_tokens == 17
    torch.testing.assert_close(last.image_tokens(pixels), vlm.projector(vlm.vision(pixels, depth=3)))


def second_tower(**overrides) -> ViTConfig:
    fields = dict(image_size=16, patch_size=4, hidden_size=12, num_hidden_layers=2, num_attention_heads=2)
    return ViTConfig(**{**fields, "patch_features": "shape_colour", **overrides})


def test_a_second_tower_joins_its_features_patch_by_patch_and_round_trips(tmp_path):
    torch.manual_seed(0)
    fused = VLM(tiny_config(second_vision=second_tower()))
    fused.init_weights()
    fused.eval()
    assert fused.projector.linear_1.in_features == 24 + 12
    pixels = torch.randn(2, 3, 16, 16)
    # each tower's second-to-last layer: block 2 of the first's 3, block 1 of the second's 2; [CLS] dropped
    joined = torch.cat([fused.vision(pixels, depth=2), fused.second_vision(pixels, depth=1)], -1)[:, 1:]
    torch.testing.assert_close(fused.image_tokens(pixels), fused.projector(joined))
    assert config_from_dict(fused.cfg.to_dict()) == fused.cfg
    write_json(tmp_path / "config.json", fused.cfg.to_dict())
    save_weights(tmp_path, fused.state_dict())
    loaded_cfg, loaded = load_model(tmp_path)
    assert loaded_cfg.second_vision == second_tower()
    torch.testing.assert_close(loaded.eval().image_tokens(pixels), fused.image_tokens(pixels))


def test_feature_norm_normalises_each_towers_features_on_their_own(tmp_path):
    torch.manual_seed(0)
    plain = VLM(tiny_config(second_vision=second_tower()))
    normed = VLM(tiny_config(second_vision=second_tower(), feature_norm=True))
    normed.init_weights()
    plain.load_state_dict(normed.state_dict(), strict=False)  # same towers, projector and LM
    with torch.no_grad():  # a learned, non-trivial affine per tower
        for norm in normed.projector.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_()
    pixels = torch.randn(2, 3, 16, 16)
    first, second = normed.vision(pixels, depth=2)[:, 1:], normed.second_vision(pixels, depth=1)[:, 1:]
    second = second * 100  # a tower with a larger scale must not drown the other
    a, b = normed.projector.norms
    joined = torch.cat([a(first), b(second)], -1)
    torch.testing.assert_close(normed.projector(torch.cat([first, second], -1)), plain.projector(joined))
    assert config_from_dict(normed.cfg.to_dict()) == normed.cfg
    write_json(tmp_path / "config.json", normed.cfg.to_dict())
    save_weights(tmp_path, normed.state_dict())
    loaded_cfg, loaded = load_model(tmp_path)
    assert loaded_cfg.feature_norm
    torch.testing.assert_close(loaded.eval().image_tokens(pixels), normed.eval().image_tokens(pixels))


@pytest.mark.parametrize("fusion", ["sum", "tokens"])
def test_tower_fusion_sum_and_tokens_leave_no_interaction_between_the_towers(tmp_path, fusion):
    """Every hidden unit of a "sum" or "tokens" projector reads one tower, so swapping one tower's
    features moves the output by the same amount whatever the other tower holds (a zero interaction
    term); the "channels" projector's units mix both, and the term is not zero."""
    torch.manual_seed(0)
    split = VLM(tiny_config(second_vision=second_tower(), tower_fusion=fusion, feature_norm=True))
    split.init_weights()
    fused = VLM(tiny_config(second_vision=second_tower()))
    fused.init_weights()
    a, a2, b, b2 = torch.randn(4, 5, 24).split(1)  # (1, 5, 24) each; the second tower is 12 wide
    b, b2 = b[..., :12], b2[..., :12]

    def interaction(projector):
        def p(x, y):
            return projector(torch.cat([x, y], -1))

        return (p(a, b) - p(a2, b) - p(a, b2) + p(a2, b2)).abs().max()

    with torch.no_grad():
        assert interaction(split.projector) < 1e-5
        assert interaction(fused.projector) > 1e-3
    assert [layer.in_features for layer in split.projector.linear_1] == [24, 12]
    write_json(tmp_path / "config.json", split.cfg.to_dict())
    save_weights(tmp_path, split.state_dict())
    loaded_cfg, loaded = load_model(tmp_path)
    assert loaded_cfg.tower_fusion == fusion
    pixels = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(loaded.eval().image_tokens(pixels), split.eval().image_tokens(pixels))
    with pytest.raises(ConfigError, match=f"tower_fusion '{fusion}' needs a second_vision"):
        tiny_config(tower_fusion=fusion)


def test_tower_fusion_tokens_gives_each_patch_one_token_per_tower_in_order(vlm):
    """Patch by patch, the first tower's token then the second's, each its own tower's MLP alone; the
    count the prompt must hold (`image_tokens`, a layout's) doubles."""
    torch.manual_seed(0)
    m = VLM(tiny_config(second_vision=second_tower(), tower_fusion="tokens")).eval()
    m.init_weights()
    pixels = torch.randn(2, 3, 16, 16)
    first, second = m.vision(pixels, depth=2)[:, 1:], m.second_vision(pixels, depth=1)[:, 1:]
    p = m.projector
    with torch.no_grad():
        tokens = m.image_tokens(pixels)  # (2, 2 * 16, C)
        torch.testing.assert_close(tokens[:, 0::2], p.linear_2[0](p.act(p.linear_1[0](first))))
        torch.testing.assert_close(tokens[:, 1::2], p.linear_2[1](p.act(p.linear_1[1](second))))
    assert m.cfg.image_tokens == 2 * vlm.cfg.image_tokens == tokens.shape[1] == 32
    assert m.cfg.layout(16, 16).image_tokens == 32 and m.cfg.layout(32, 16).tokens_per_tile == 32
    with pytest.raises(ConfigError, match="too small for one tile of 32"):
        tiny_config(second_vision=second_tower(), tower_fusion="tokens", max_image_tokens=16)


@pytest.mark.parametrize(
    "field, value", [("image_size", 32), ("patch_size", 8), ("cls_token", False), ("image_mean", [0.4] * 3)]
)
def test_towers_that_see_different_pixels_are_refused_naming_the_difference(field, value):
    overrides = {field: value, **({"pooling": "mean"} if field == "cls_token" else {})}
    with pytest.raises(ConfigError, match=f"differ in {field}"):
        tiny_config(second_vision=second_tower(**overrides))


def test_pooling_averages_2x2_patch_blocks(vlm):
    pooled = VLM(tiny_config(pool=2))
    pooled.load_state_dict(vlm.state_dict())
    pixels = torch.randn(1, 3, 16, 16)
    assert pooled.cfg.image_tokens == 4
    grid = vlm.vision(pixels, depth=2)[:, 1:].reshape(1, 2, 2, 2, 2, 24)  # (N, r, dr, c, dc, Cv)
    block_means = grid.mean(dim=(2, 4)).reshape(1, 4, 24)  # rows then cols
    torch.testing.assert_close(pooled.image_tokens(pixels), vlm.projector(block_means))


def test_splice_puts_features_exactly_at_the_placeholders_in_order(vlm):
    ids = torch.tensor([[5, IMAGE, IMAGE, 7], [IMAGE, 3, 4, IMAGE]])
    image_embeds = torch.randn(4, 32)
    x = vlm.splice(ids, image_embeds)  # (2, 4, 32)
    torch.testing.assert_close(x[0, 1], image_embeds[0])
    torch.testing.assert_close(x[0, 2], image_embeds[1])
    torch.testing.assert_close(x[1, 0], image_embeds[2])
    torch.testing.assert_close(x[1, 3], image_embeds[3])
    text = ids != IMAGE
    torch.testing.assert_close(x[text], vlm.lm.embed.tokens(ids)[text])


def test_forward_with_pixels_equals_forward_with_their_tokens(vlm):
    pixels = torch.randn(2, 3, 16, 16)
    ids = torch.tensor([[1] + [IMAGE] * 16 + [2], [3] + [IMAGE] * 16 + [4]])
    expected = vlm(ids, vlm.image_tokens(pixels).flatten(0, 1))
    torch.testing.assert_close(vlm(ids, pixels=pixels), expected)
    plain = vlm.lm(embeds=vlm.splice(ids, vlm.image_tokens(pixels).flatten(0, 1)))
    torch.testing.assert_close(expected, plain)


def test_count_mismatch_names_both_counts(vlm):
    ids = torch.tensor([[1, IMAGE, IMAGE, 2]])
    with pytest.raises(ValueError, match="2 image placeholder token.*3 image token"):
        vlm(ids, torch.randn(3, 32))
    with pytest.raises(ValueError, match="2 image placeholder token.*0 image token"):
        vlm(ids)


def test_greedy_generation_through_the_engine_equals_argmax_of_full_forwards(vlm):
    """Core-issue check: the KV-cached engine with image features spliced on the prefill decodes exactly
    what re-running the whole sequence (images spliced every time) picks, for a left-padded batch."""
    torch.manual_seed(1)
    prompts = [[1, 2, *[IMAGE] * 16, 3], [4, *[IMAGE] * 16, 5, 6, 7, 8]]
    image_embeds = torch.randn(32, 32)  # one image per row, in row order
    steps = generate_ids(vlm.with_images(image_embeds), prompts, SamplingSettings(temperature=0), 12)
    got = torch.stack(list(steps), dim=1)  # (2, 12)
    for row, prompt in enumerate(prompts):
        ids = list(prompt)
        feats = image_embeds[16 * row : 16 * (row + 1)]
        with torch.no_grad():
            for _ in range(12):
                ids.append(int(vlm(torch.tensor([ids]), feats)[0, -1].argmax()))
        assert got[row].tolist() == ids[len(prompt) :]


def test_engine_context_check_uses_the_language_model_context(vlm):
    prompt = [[1, *[IMAGE] * 16, 2]]
    with pytest.raises(ValueError, match="18 tokens.*100 = 118 exceed the model's context of 96"):
        generate_ids(vlm.with_images(torch.randn(16, 32)), prompt, SamplingSettings(temperature=0), 100)
