"""ViT: patches are tokens; shapes, positions, pooling, inner-layer features, config round trip."""

import pytest
import torch

from alltokens.models import build_model, config_from_dict
from alltokens.models.vit import ViT, ViTConfig
from alltokens.nn.config import ConfigError


def tiny(**overrides) -> ViTConfig:
    fields = dict(
        image_size=16,
        patch_size=4,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=40,
    )
    return ViTConfig(**{**fields, **overrides})


def model(**overrides) -> ViT:
    torch.manual_seed(0)
    m = ViT(tiny(**overrides))
    m.init_weights(std=0.3)
    return m.eval()


def test_224_pixels_in_16px_patches_are_196_tokens_plus_cls():
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    assert (cfg.num_patches, cfg.num_tokens) == (196, 197)
    out = ViT(cfg)(torch.zeros(2, 3, 224, 224))
    assert out.shape == (2, 197, 32)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_config_round_trips_and_patch_order_matters(tmp_path, positions):
    extra = {"rope_dims": 2} if positions == "rope" else {}
    cfg = tiny(position_embedding=positions, **extra)
    cfg.save(tmp_path / "config.json")
    assert ViTConfig.load(tmp_path / "config.json") == cfg
    assert isinstance(build_model(config_from_dict(cfg.to_dict())), ViT)
    m = model(position_embedding=positions, **extra)
    x = torch.randn(1, 3, 16, 16)
    swapped = x.clone()  # swap two patches' pixels: with positions, [CLS] must notice
    swapped[..., :4, :4], swapped[..., 12:, 12:] = x[..., 12:, 12:], x[..., :4, :4]
    with torch.no_grad():
        assert (m.embed(x) - m.embed(swapped)).abs().max() > 1e-3


def test_without_positions_the_mean_pool_ignores_patch_order():
    m = model(position_embedding="none", pooling="mean", cls_token=False)
    x = torch.randn(1, 3, 16, 16)
    swapped = x.clone()
    swapped[..., :4, :4], swapped[..., 12:, 12:] = x[..., 12:, 12:], x[..., :4, :4]
    with torch.no_grad():
        torch.testing.assert_close(m.embed(x), m.embed(swapped), atol=1e-5, rtol=0)


def test_depth_gives_the_features_of_an_inner_layer():
    m = model()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        inner = m(x, depth=1)
        manual = m.core.blocks[0](m.tokens(x))
        full = m(x)
    torch.testing.assert_close(inner, manual)
    assert (inner - full).abs().max() > 1e-3


def test_bad_configs_and_inputs_are_refused():
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        tiny(image_size=18)
    with pytest.raises(ConfigError, match="rope_dims = 2"):
        tiny(position_embedding="rope")
    with pytest.raises(ConfigError, match="cls_token"):
        tiny(cls_token=False)
    with pytest.raises(ConfigError, match="causal"):
        tiny(causal=True)
    with pytest.raises(ConfigError, match="contrast_floor"):
        tiny(patch_features="shape_colour", contrast_floor=0.0)
    with pytest.raises(ConfigError, match="contrast_noise must be >= 0, got -0.1"):
        tiny(patch_features="shape", contrast_noise=-0.1)
    for features in ("pixels", "colour"):
        with pytest.raises(ConfigError, match="normalise_outline"):
            tiny(patch_features=features, normalise_outline=True)
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        model()(torch.zeros(1, 3, 32, 32))


def test_max_pool_is_the_patchwise_maximum_and_skips_cls():
    for cls_token in (True, False):
        m = model(pooling="max", cls_token=cls_token)
        with torch.no_grad():
            hidden = m(torch.randn(2, 3, 16, 16))  # (B, T, C)
            torch.testing.assert_close(m.pool(hidden), hidden[:, int(cls_token) :].max(dim=1).values)


def test_max_grid_pool_starts_as_max_and_its_readout_tells_cells_apart():
    """At init the grid readout is zero (training starts as max pooling); once it has weights, the
    same patch tokens in other cells pool differently, which a max over patches cannot tell."""
    m = model(pooling="max_grid", cls_token=False)
    hidden = torch.randn(2, 16, 24)  # (B, N, C)
    cells = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    moved = hidden[:, cells]  # the same patch tokens in other cells
    with torch.no_grad():
        torch.testing.assert_close(m.pool(hidden), hidden.max(dim=1).values)
        torch.testing.assert_close(m.pool(moved), m.pool(hidden))
        m.grid_readout.weight.normal_()
        assert (m.pool(moved) - m.pool(hidden)).abs().max() > 1e-2
    assert m.grid_readout.weight.shape == (24, 16 * 24)
    assert model(pooling="max").grid_readout is None


def test_shape_colour_patches_feed_the_projection_and_recolouring_moves_only_the_colour_inputs():
    """The projection reads [outline, colours]: a recoloured image changes the tokens only through the
    colour inputs, so a projection that ignores them embeds both alike."""
    m = model(patch_features="shape_colour")
    assert m.patch_embed.in_features == 4 * 4 + 2 * 3 + 1
    square = torch.full((1, 3, 16, 16), -0.8)
    red, blue = square.clone(), square.clone()
    red[:, :, 5:10, 5:10] = torch.tensor([0.9, -0.7, -0.7])[:, None, None]
    blue[:, :, 5:10, 5:10] = torch.tensor([-0.7, -0.5, 0.9])[:, None, None]
    assert not torch.allclose(m(red), m(blue))
    with torch.no_grad():
        m.patch_embed.weight[:, 16:] = 0  # colour inputs cut off
    torch.testing.assert_close(m(red), m(blue))


def test_shape_and_colour_patch_features_each_see_only_their_half():
    """A "shape" tower embeds a recoloured object exactly alike, a "colour" tower an object of the same
    colours in another outline inside the same patch: neither can tie a colour to a shape below the
    patch grid (untrained weights, no cut-off)."""
    background, red, blue = (
        torch.tensor([-0.8] * 3),
        torch.tensor([0.9, -0.7, -0.7]),
        torch.tensor([-0.7, -0.5, 0.9]),
    )
    square = torch.zeros(16, 16, dtype=torch.bool)
    square[5:7, 5:7] = True  # both inside the patch at row 1, column 1 (4-px patches)
    bar = torch.zeros(16, 16, dtype=torch.bool)
    bar[6, 4:8] = True

    def drawn(mask: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, colour[:, None, None], background[:, None, None])[None]  # (1, 3, 16, 16)

    shape, colour = model(patch_features="shape"), model(patch_features="colour")
    assert shape.patch_embed.in_features == 4 * 4 + 1 and colour.patch_embed.in_features == 2 * 3
    with torch.no_grad():
        torch.testing.assert_close(shape(drawn(square, red)), shape(drawn(square, blue)))
        assert not torch.allclose(shape(drawn(square, red)), shape(drawn(bar, red)))
        torch.testing.assert_close(colour(drawn(square, red)), colour(drawn(bar, red)))
        assert not torch.allclose(colour(drawn(square, red)), colour(drawn(square, blue)))


def test_a_normalised_shape_tower_embeds_an_object_alike_wherever_it_sits_in_its_patch():
    """With normalise_outline an object moved within its patch gives the same tokens; without, it does
    not (untrained weights): a small object's shape is read apart from its offset in the patch."""
    moved = torch.full((2, 3, 16, 16), -0.8)
    moved[0, :, 4:6, 4:6] = 0.9  # a 2x2 square in the patch at row 1, column 1, top left of it
    moved[1, :, 6:8, 6:8] = 0.9  # the same square, bottom right of that patch
    normalised, plain = model(patch_features="shape", normalise_outline=True), model(patch_features="shape")
    with torch.no_grad():
        out = normalised(moved)
        torch.testing.assert_close(out[0], out[1])
        out = plain(moved)
        assert not torch.allclose(out[0], out[1])
