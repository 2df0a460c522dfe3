import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from alltokens.tokenizers.tiling import (
    TileLayout,
    choose_layout,
    most_image_tokens,
    tile_image,
    tokens_per_tile,
)


def test_tokens_per_tile_and_pooling_cuts_4x():
    assert tokens_per_tile(64, 8) == 64
    assert tokens_per_tile(64, 8, pool=2) == 16
    assert tokens_per_tile(224, 16) == 196
    assert tokens_per_tile(224, 16, pool=2) == 49  # 14 -> 7 per side
    assert tokens_per_tile(40, 8, pool=2) == 9  # odd 5x5 grid rounds up to 3x3
    assert tokens_per_tile(48, 8, pool=3) == 4 and tokens_per_tile(48, 8, pool=3, cls=True) == 5
    for bad in (0, True, 1.5):  # a bool is refused, not read as 2x2: `pool` is a block side
        with pytest.raises(ValueError, match="pool must be a block side"):
            tokens_per_tile(64, 8, pool=bad)


def test_most_image_tokens_bounds_every_layout():
    assert most_image_tokens(64, 1) == 64  # tiling off: one tile, no overview
    assert most_image_tokens(64, 4) == 5 * 64  # 4 tiles + overview
    assert most_image_tokens(64, 4, max_image_tokens=200) == 3 * 64
    for w, h in ((1000, 1000), (300, 90), (64, 640)):
        for budget in (None, 64, 200, 1000):
            layout = choose_layout(w, h, 64, 8, budget, max_tiles=4)
            assert layout.image_tokens <= most_image_tokens(64, 4, budget)


def test_tile_not_multiple_of_patch_raises():
    with pytest.raises(ValueError, match="60.*8"):
        choose_layout(100, 100, 60, 8)


def test_square_large_image_gets_square_grid_plus_overview():
    layout = choose_layout(1000, 1000, 64, 8)
    assert (layout.rows, layout.cols, layout.overview) == (3, 3, True)
    assert layout.tiles == 10 and layout.image_tokens == 640


def test_tiny_image_gets_one_tile_without_overview():
    layout = choose_layout(20, 30, 64, 8)
    assert (layout.rows, layout.cols, layout.overview) == (1, 1, False)
    assert layout.image_tokens == 64


def test_wide_and_tall_images_follow_their_aspect_ratio():
    wide = choose_layout(256, 64, 64, 8)  # 4:1 at exactly 4 tiles of resolution
    assert (wide.rows, wide.cols) == (1, 4)
    big_wide = choose_layout(4000, 1000, 64, 8)
    assert big_wide.cols >= 2 * big_wide.rows
    tall = choose_layout(64, 320, 64, 8)  # 1:5
    assert (tall.rows, tall.cols) == (5, 1)
    big_tall = choose_layout(1000, 5000, 64, 8)
    assert big_tall.rows >= 2 * big_tall.cols
    strip = choose_layout(64 * 8, 64, 64, 8, max_tiles=12)
    assert (strip.rows, strip.cols) == (1, 8)
    assert (choose_layout(64, 64 * 8, 64, 8).rows, choose_layout(64, 64 * 8, 64, 8).cols) == (8, 1)


def test_tight_budget_falls_back_to_fewer_tiles():
    free = choose_layout(1000, 1000, 64, 8)
    tight = choose_layout(1000, 1000, 64, 8, max_image_tokens=5 * 64)
    assert tight.image_tokens <= 5 * 64 < free.image_tokens
    assert tight.overview and tight.rows * tight.cols == 4
    minimum = choose_layout(1000, 1000, 64, 8, max_image_tokens=64)
    assert (minimum.rows, minimum.cols, minimum.overview, minimum.image_tokens) == (1, 1, False, 64)


def test_pooled_layout_fits_4x_more_tiles_in_the_same_budget():
    plain = choose_layout(3000, 3000, 64, 8, max_image_tokens=170)
    pooled = choose_layout(3000, 3000, 64, 8, max_image_tokens=170, pool=2)
    assert plain.tokens_per_tile == 4 * pooled.tokens_per_tile
    assert plain.rows * plain.cols == 1 and pooled.rows * pooled.cols == 9
    assert pooled.image_tokens == 160 and pooled.pool == 2 and plain.pool == 1


def test_budget_too_small_for_one_tile_names_both_numbers():
    with pytest.raises(ValueError, match=r"budget of 63 .* needs 64 tokens"):
        choose_layout(500, 500, 64, 8, max_image_tokens=63)
    with pytest.raises(ValueError, match=r"budget of 15 .* needs 16 tokens"):
        choose_layout(500, 500, 64, 8, max_image_tokens=15, pool=2)
    with pytest.raises(ValueError, match=r"budget of 16 .* needs 17 tokens"):  # a kept [CLS] counts
        choose_layout(500, 500, 64, 8, max_image_tokens=16, pool=2, cls=True)
    with pytest.raises(ValueError, match=r"budget of 100 .* needs 128 tokens .* 2 tokens per patch"):
        choose_layout(500, 500, 64, 8, max_image_tokens=100, streams=2)  # a token per tower
    assert choose_layout(500, 500, 64, 8, max_image_tokens=128, streams=2).image_tokens == 128


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="0x10"):
        choose_layout(0, 10, 64, 8)
    with pytest.raises(ValueError, match="max_tiles"):
        choose_layout(10, 10, 64, 8, max_tiles=0)


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(1, 20_000),
    h=st.integers(1, 20_000),
    budget=st.one_of(st.none(), st.integers(1, 2000)),
    max_tiles=st.integers(1, 16),
    pool=st.sampled_from([1, 2]),
    overview=st.booleans(),
)
def test_layout_respects_budget_and_tile_cap(w, h, budget, max_tiles, pool, overview):
    per_tile = 64 // pool**2
    if budget is not None and budget < per_tile:
        with pytest.raises(ValueError, match=f"budget of {budget}"):
            choose_layout(w, h, 64, 8, budget, max_tiles, pool, overview)
        return
    layout = choose_layout(w, h, 64, 8, budget, max_tiles, pool, overview)
    assert layout.rows * layout.cols <= max_tiles
    assert budget is None or layout.image_tokens <= budget
    assert layout.tokens_per_tile == per_tile and layout.pool == pool
    assert layout.overview == (overview and layout.rows * layout.cols > 1)
    # LLaVA-NeXT's first criterion: no allowed grid keeps more of the image
    kept = min(w * h, _fitted_area(w, h, layout.cols * 64, layout.rows * 64))
    for rows in range(1, max_tiles + 1):
        for cols in range(1, max_tiles // rows + 1):
            n = rows * cols + (overview and rows * cols > 1)
            if budget is None or n * per_tile <= budget:
                assert min(w * h, _fitted_area(w, h, cols * 64, rows * 64)) <= kept


def _fitted_area(w: int, h: int, grid_w: int, grid_h: int) -> int:
    s = min(grid_w / w, grid_h / h)
    return int(w * s) * int(h * s)


def test_describe():
    layout = TileLayout(rows=2, cols=3, tile=64, overview=True, pool=2, tokens_per_tile=16)
    assert layout.describe() == "2x3 tiles of 64px + overview, 2x2 pooled: 7 x 16 = 112 image tokens"
    single = TileLayout(rows=1, cols=1, tile=64, overview=False, pool=1, tokens_per_tile=64)
    assert single.describe() == "1x1 tile of 64px: 1 x 64 = 64 image tokens"


@pytest.mark.parametrize(("w", "h"), [(300, 100), (90, 400), (20, 20), (1000, 1000)])
def test_tile_image_returns_layout_tiles_of_tile_size(w, h):
    image = Image.new("RGB", (w, h), (200, 30, 30))
    layout = choose_layout(w, h, 32, 8, max_tiles=6)
    tiles = tile_image(image, layout)
    assert len(tiles) == layout.tiles
    assert all(t.size == (32, 32) and t.mode == "RGB" for t in tiles)


def test_tile_image_puts_overview_first_and_cuts_row_major():
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (32, 0, 64, 32))  # left red, right blue
    layout = TileLayout(rows=1, cols=2, tile=32, overview=True, pool=1, tokens_per_tile=16)
    overview, left, right = tile_image(image, layout)
    assert overview.getpixel((2, 16)) == (255, 0, 0) and overview.getpixel((29, 16)) == (0, 0, 255)
    assert left.getpixel((16, 16)) == (255, 0, 0) and right.getpixel((16, 16)) == (0, 0, 255)
    tall = TileLayout(rows=2, cols=1, tile=32, overview=False, pool=1, tokens_per_tile=16)
    top, bottom = tile_image(image.rotate(90, expand=True), tall)  # blue on top after rotating
    assert top.getpixel((16, 16)) == (0, 0, 255) and bottom.getpixel((16, 16)) == (255, 0, 0)
