import pytest
import torch
from torch import nn

from alltokens.data.shapes import render, scene_stream
from alltokens.tokenizers.image import to_pixels
from alltokens.tokenizers.patches import (
    background_colour,
    normalise_outlines,
    patch_grid,
    patchify,
    pool_patches,
    shape_colour_patches,
    unpatchify,
)


def test_224_with_16px_patches_gives_196_tokens():
    x = torch.randn(2, 3, 224, 224)
    assert patchify(x, 16).shape == (2, 196, 3 * 16 * 16)


@pytest.mark.parametrize(("h", "w", "p"), [(32, 48, 16), (12, 8, 4), (7, 5, 1)])
def test_unpatchify_inverts_patchify(h, w, p):
    x = torch.randn(2, 3, h, w)
    tokens = patchify(x, p)
    assert tokens.shape == (2, (h // p) * (w // p), 3 * p * p)
    assert torch.equal(unpatchify(tokens, p, h, w), x)


def test_linear_on_patchify_equals_strided_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 48)
    conv = nn.Conv2d(3, 7, 8, stride=8)
    linear = nn.Linear(3 * 8 * 8, 7)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(7, -1))  # (D, C*p*p)
        linear.bias.copy_(conv.bias)
    expected = conv(x).flatten(2).transpose(1, 2)  # (B, N, D), row-major patches
    torch.testing.assert_close(linear(patchify(x, 8)), expected)


def test_patch_vector_layout_is_channel_then_row_then_col():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    tokens = patchify(x, 2)
    # patch 1 is row 0, col 1: pixels x[0, :, 0:2, 2:4] flattened (C, p, p)
    assert torch.equal(tokens[0, 1], x[0, :, 0:2, 2:4].flatten())


@pytest.mark.parametrize(("h", "w"), [(224, 225), (17, 32)])
def test_sizes_not_multiple_of_patch_raise_naming_sizes(h, w):
    with pytest.raises(ValueError, match=f"{h}x{w}.*16"):
        patchify(torch.zeros(1, 3, h, w), 16)


def test_unpatchify_rejects_tokens_of_wrong_count():
    with pytest.raises(ValueError, match="do not fit"):
        unpatchify(torch.zeros(1, 5, 12), 2, 4, 4)


def test_patch_grid_matches_patchify_order():
    rows, cols, p = 3, 5, 2
    # an image whose pixel values encode (row, col) of their patch
    r = torch.arange(rows).repeat_interleave(p)[:, None].expand(rows * p, cols * p)
    c = torch.arange(cols).repeat_interleave(p)[None, :].expand(rows * p, cols * p)
    x = torch.stack([r, c]).float()[None]  # (1, 2, h, w)
    tokens = patchify(x, p)  # (1, N, 2*p*p)
    found = tokens[0].reshape(rows * cols, 2, p * p)[:, :, 0].long()  # (N, 2)
    assert torch.equal(patch_grid(rows, cols), found)


def test_pool_patches_averages_2x2_neighbours():
    rows, cols = 4, 6
    tokens = torch.randn(2, rows * cols, 3)
    pooled, r, c = pool_patches(tokens, rows, cols)
    assert (r, c) == (2, 3)
    grid = tokens.reshape(2, rows, cols, 3)
    # block (1, 2) covers rows 2-3, cols 4-5
    expected = grid[:, 2:4, 4:6].mean(dim=(1, 2))
    torch.testing.assert_close(pooled[:, 1 * c + 2], expected)


def test_pool_patches_odd_grid_averages_only_existing_cells():
    tokens = torch.arange(9.0).reshape(1, 9, 1)  # 3x3 grid 0..8
    pooled, r, c = pool_patches(tokens, 3, 3)
    assert (r, c) == (2, 2)
    assert pooled.flatten().tolist() == [(0 + 1 + 3 + 4) / 4, (2 + 5) / 2, (6 + 7) / 2, 8.0]


def test_pool_patches_rejects_wrong_grid():
    with pytest.raises(ValueError, match="3x3"):
        pool_patches(torch.zeros(1, 8, 2), 3, 3)


def _disc_on(background: list[float], colour: list[float], size: int = 32) -> torch.Tensor:
    """(1, 3, size, size) a soft-edged disc of `colour` in the top-left 16x16 patch, on `background`."""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    alpha = (5.0 - ((yy - 8) ** 2 + (xx - 8) ** 2).sqrt()).clamp(0, 1)  # anti-aliased rim
    bg, fg = torch.tensor(background)[:, None, None], torch.tensor(colour)[:, None, None]
    return (bg + alpha * (fg - bg)).unsqueeze(0)


def test_the_background_from_a_grid_of_pixels_is_the_median_of_all():
    """On shapes pictures (objects cover at most a third) the grid's median is the background that the
    median of every pixel gives, to within the pictures' pixel noise (1 to 4 of 255, 0.03 normalised)."""
    stream = scene_stream(3, "train", 96)
    pixels = to_pixels([stream[i][0] for i in range(32)], 96)  # (32, 3, 96, 96)
    every = pixels.flatten(2).median(dim=-1).values  # (32, 3)
    torch.testing.assert_close(background_colour(pixels), every, atol=0.03, rtol=0)
    small = to_pixels([render(stream[0][1], 16)], 16)  # below the grid: every pixel counts
    torch.testing.assert_close(background_colour(small), small.flatten(2).median(dim=-1).values)


def test_shape_colour_patches_keep_the_outline_apart_from_the_colour():
    red = shape_colour_patches(_disc_on([0.8, 0.8, 0.8], [0.9, -0.8, -0.8]), 16)
    blue = shape_colour_patches(_disc_on([-0.9, -0.9, -0.9], [-0.8, -0.6, 0.9]), 16)
    assert red.shape == (1, 4, 16 * 16 + 2 * 3 + 1)
    contrast = slice(0, 256)
    # the same outline in another colour on another background: the same contrast map
    torch.testing.assert_close(red[0, 0, contrast], blue[0, 0, contrast], atol=1e-5, rtol=0)
    assert red[0, 0, contrast].max() == 1.0 and red[0, 0, contrast].min() == 0.0
    # the colours are read apart: the disc's (weighted towards its solid middle) and the background's
    assert (red[0, 0, 256:259] - torch.tensor([0.9, -0.8, -0.8])).abs().max() < 0.35
    torch.testing.assert_close(red[0, 0, 259:262], torch.tensor([0.8, 0.8, 0.8]))
    # empty patches: nothing over the floor, so no contrast and no coverage, and (noise-free, as plainly
    # drawn pictures are) the background as their foreground colour, not a grey that is in no picture
    assert red[0, 1:, contrast].abs().max() == 0.0 and red[0, 1:, -1].abs().max() == 0.0
    torch.testing.assert_close(red[0, 1:, 256:259], red[0, 1:, 259:262])


def test_shape_colour_patches_scale_faint_noise_by_the_floor_not_to_full_contrast():
    noise = 0.01 * torch.randn(1, 3, 16, 16)
    contrast = shape_colour_patches(noise, 16, floor=0.3)[0, 0, :256]
    assert contrast.max() < 0.3


def test_contrast_noise_leaves_pixel_noise_no_contrast_so_noisy_and_clean_pictures_read_alike():
    """Pixel noise of up to 4 of 255 (what `render` adds; 0.031 normalised) makes an empty patch's contrast
    map a noise pattern of up to about half the floor-scaled range; with `noise` it is all zeros, as in a
    noise-free picture, and an object's outline and colours are kept."""
    torch.manual_seed(0)
    clean = _disc_on([0.8, 0.8, 0.8], [0.9, -0.8, -0.8])  # (1, 3, 32, 32): a disc in patch 0
    noisy = clean + (4 / 255 / 0.5) * torch.randn_like(clean)
    assert shape_colour_patches(noisy, 16)[0, 1:, :256].max() > 0.3  # the noise pattern, without
    a, b = shape_colour_patches(noisy, 16, noise=0.2), shape_colour_patches(clean, 16, noise=0.2)
    assert a[0, 1:, :256].abs().max() == 0.0 and a[0, 1:, -1].abs().max() == 0.0  # empty patches: nothing
    torch.testing.assert_close(a, b, atol=0.1, rtol=0)  # noisy and clean read alike, the disc included
    assert (
        a[0, 0, :256].max() == 1.0 and (a[0, 0, 256:259] - torch.tensor([0.9, -0.8, -0.8])).abs().max() < 0.35
    )


def _disc_at(row: float, col: float, radius: float = 3.0, size: int = 16) -> torch.Tensor:
    """(1, 3, size, size) an anti-aliased grey disc centred at pixel coordinates (row, col) on black."""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    alpha = (radius - ((yy - row) ** 2 + (xx - col) ** 2).sqrt()).clamp(0, 1)
    return (-0.9 + 1.5 * alpha).expand(1, 3, size, size)


def _square_at(row: float, col: float, half: float, size: int = 16) -> torch.Tensor:
    """(1, 3, size, size) an anti-aliased grey square of half-side `half` centred at (row, col) on black."""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    inside = (half + 0.5 - (yy - row).abs()).clamp(0, 1) * (half + 0.5 - (xx - col).abs()).clamp(0, 1)
    return (-0.9 + 1.5 * inside).expand(1, 3, size, size)


def test_normalised_outlines_read_alike_wherever_the_object_sits_and_however_large():
    contrast = slice(0, 256)

    def outline(image: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        return shape_colour_patches(image, 16, normalise=normalise)[0, 0, contrast]

    near_corner, off_centre, large = _disc_at(5.0, 6.0), _disc_at(10.0, 9.0), _disc_at(8.0, 8.0, radius=6.0)
    assert not torch.allclose(outline(near_corner, False), outline(off_centre, False))
    torch.testing.assert_close(outline(near_corner), outline(off_centre), atol=1e-5, rtol=0)

    def nearer_own_shape(normalise: bool) -> bool:
        """Each disc nearer to the other-sized disc than to either square, and the squares alike (32 px)."""
        discs = [shape_colour_patches(_disc_at(14.0, 17.0, r, 32), 32, normalise=normalise) for r in (6, 12)]
        squares = [
            shape_colour_patches(_square_at(16.0, 16.0, h, 32), 32, normalise=normalise) for h in (4, 8)
        ]
        a, b = [x[0, 0, :1024] for x in discs], [x[0, 0, :1024] for x in squares]

        def gap(x: torch.Tensor, y: torch.Tensor) -> float:
            return (x - y).abs().mean().item()

        return all(
            gap(*pair) < min(gap(pair[0], o), gap(pair[1], o))
            for pair, others in ((a, b), (b, a))
            for o in others
        )

    assert nearer_own_shape(normalise=True) and not nearer_own_shape(normalise=False)
    # placed at the middle, spread to a quarter of the patch
    grid = outline(large).reshape(16, 16)
    steps = torch.arange(16.0)
    weights = (grid - 0.2).clamp_min(0) / (grid - 0.2).clamp_min(0).sum()
    row, col = (weights.sum(1) * steps).sum(), (weights.sum(0) * steps).sum()
    assert abs(row - 7.5) < 0.3 and abs(col - 7.5) < 0.3
    spread = (weights * ((steps[:, None] - row) ** 2 + (steps[None, :] - col) ** 2)).sum().sqrt()
    assert abs(spread - 0.25 * 16) < 0.5, spread
    # the colours and the coverage are untouched (coverage still tells the sizes apart)
    moved = shape_colour_patches(near_corner, 16, normalise=True)
    torch.testing.assert_close(moved[..., 256:], shape_colour_patches(near_corner, 16)[..., 256:])


def test_normalise_outlines_leaves_a_map_with_nothing_over_the_threshold_as_it_is():
    faint = 0.15 * torch.rand(2, 3, 16)  # (2, 3, p*p) for 4-px patches: all below the 0.2 threshold
    torch.testing.assert_close(normalise_outlines(faint, 4), faint)
    spot = torch.zeros(1, 16)
    spot[0, 0] = 1.0  # one bright corner pixel moves to the middle
    out = normalise_outlines(spot, 4).reshape(4, 4)
    assert out[0, 0] == 0 and out[1:3, 1:3].sum() > 0.5
