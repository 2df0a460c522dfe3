import io
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from alltokens.tokenizers.image import (
    CLIP_MEAN,
    CLIP_STD,
    ImageError,
    draw_patch_grid,
    fit_image,
    from_pixels,
    load_image,
    to_pixels,
)

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def noise_image(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR (with a fixed CRC) claims another size: a decompression bomb header."""
    data = bytearray(encoded(Image.new("RGB", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)  # IHDR payload starts at byte 16
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC over "IHDR" + 13 bytes
    return bytes(data)


def pixel(image: Image.Image, x: int = 0, y: int = 0) -> tuple[int, ...]:
    return tuple(image.getpixel((x, y)))


def test_load_png_file_keeps_pixels(tmp_path):
    image = noise_image()
    path = tmp_path / "noise.png"
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (64, 48)
    assert np.array_equal(np.asarray(loaded), np.asarray(image))
    assert np.array_equal(np.asarray(load_image(str(path))), np.asarray(image))
    assert np.array_equal(np.asarray(load_image(path.read_bytes())), np.asarray(image))


def test_missing_file_raises_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def test_directory_raises_image_error(tmp_path):
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


def test_text_file_named_png_raises_image_error_naming_it(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some text, not pixels\n")
    with pytest.raises(ImageError, match=r"notes\.png.*not a readable image"):
        load_image(path)


def test_garbage_bytes_name_bytes():
    with pytest.raises(ImageError, match="<bytes>"):
        load_image(b"\x00\x01 definitely not an image")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_raises_on_load_naming_it(tmp_path, fmt):
    data = encoded(noise_image(128, 128), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=rf"cut\.{fmt.lower()}.*truncated"):
        load_image(path)


def test_zero_size_image_raises():
    with pytest.raises(ImageError, match="zero-size"):
        load_image(Image.new("RGB", (0, 0)))


def test_png_header_claiming_zero_size_raises(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(png_claiming_size(0, 0))
    with pytest.raises(ImageError, match="empty.png"):
        load_image(path)


def test_enormous_png_header_rejected_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(100_000, 100_000))  # 10^10 pixels in 70 bytes
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"bomb\.png.*10000000000 pixels.*limit"):
        load_image(path)
    assert time.perf_counter() - start < 5.0


def test_over_our_limit_but_under_pils_names_both_numbers(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming_size(10_000, 10_000))  # 10^8: over our 4e7 default, under PIL's
    with pytest.raises(ImageError, match=r"big\.png: 10000x10000 = 100000000 pixels .* 40000000"):
        load_image(path)


def test_max_pixels_keyword_overrides_the_limit():
    data = encoded(noise_image(100, 100))
    with pytest.raises(ImageError, match=r"<bytes>: 100x100 = 10000 pixels .* 5000"):
        load_image(data, max_pixels=5000)
    assert load_image(data, max_pixels=10_000).size == (100, 100)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (0, 0, 20, 20))  # blue left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    loaded = load_image(encoded(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert loaded.size == (20, 40)
    top, bottom = np.asarray(loaded)[2, 10], np.asarray(loaded)[37, 10]
    assert top[2] > 200 and top[0] < 60  # left edge rotated to the top
    assert bottom[0] > 200 and bottom[2] < 60


def test_grayscale_8bit_and_1bit_become_gray_rgb():
    assert pixel(load_image(Image.new("L", (3, 3), 100))) == (100, 100, 100)
    assert pixel(load_image(Image.new("1", (3, 3), 1))) == WHITE


def test_16bit_png_scales_instead_of_clipping(tmp_path):
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)  # 32896 = 128 * 257
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    row = np.asarray(load_image(path))[0, :, 0]
    assert row.tolist() == [0, 128, 255]


def test_32bit_int_and_float_grayscale():
    as_int = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.int32), mode="I")
    assert np.asarray(load_image(as_int))[0, :, 1].tolist() == [0, 128, 255]
    small_int = Image.fromarray(np.array([[0, 7, 200]], dtype=np.int32), mode="I")
    assert np.asarray(load_image(small_int))[0, :, 1].tolist() == [0, 7, 200]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    assert np.asarray(load_image(unit))[0, :, 1].tolist() == [0, 128, 255]
    bytes_range = Image.fromarray(np.array([[0.0, 100.0, 300.0]], dtype=np.float32), mode="F")
    assert np.asarray(load_image(bytes_range))[0, :, 1].tolist() == [0, 100, 255]


def test_rgba_composites_on_white(tmp_path):
    image = Image.new("RGBA", (2, 1), (0, 0, 0, 0))  # left: fully transparent black
    image.putpixel((1, 0), (255, 0, 0, 128))  # right: half-transparent red
    path = tmp_path / "alpha.png"
    image.save(path)
    loaded = load_image(path)
    assert pixel(loaded, 0) == WHITE
    r, g, b = pixel(loaded, 1)
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1
    assert image.mode == "RGBA"  # the caller's image is untouched


def test_gray_with_alpha_composites_on_white():
    assert pixel(load_image(Image.new("LA", (2, 2), (0, 0)))) == WHITE
    assert pixel(load_image(Image.new("LA", (2, 2), (50, 255)))) == (50, 50, 50)


def test_palette_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([*RED, *BLUE] + [0] * 762)
    palette.putpixel((1, 0), 1)
    assert [pixel(load_image(palette), x) for x in (0, 1)] == [RED, BLUE]
    path = tmp_path / "palette.png"
    palette.save(path, transparency=1)  # blue index is transparent
    loaded = load_image(path)
    assert pixel(loaded, 0) == RED and pixel(loaded, 1) == WHITE


def test_cmyk_and_ycbcr_become_rgb(tmp_path):
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # no cyan, full magenta + yellow: red
    path = tmp_path / "cmyk.tiff"
    cmyk.save(path)
    assert pixel(load_image(path)) == RED
    ycbcr = Image.new("RGB", (2, 2), BLUE).convert("YCbCr")
    r, g, b = pixel(load_image(ycbcr))
    assert r < 10 and g < 10 and b > 245


def test_fit_image_modes():
    image = Image.new("RGB", (100, 50), RED)
    image.paste(BLUE, (50, 0, 100, 50))  # left half red, right half blue
    assert fit_image(image, 32).size == (32, 32)
    assert fit_image(image, (48, 20)).size == (48, 20)

    padded = fit_image(image, 64, "pad", fill=(0, 255, 0))
    assert padded.size == (64, 64)
    assert pixel(padded, 32, 2) == (0, 255, 0) and pixel(padded, 32, 61) == (0, 255, 0)  # bars
    assert pixel(padded, 5, 32) == RED and pixel(padded, 58, 32) == BLUE  # full width kept
    mean_padded = fit_image(image, 64, "pad")
    r, g, b = pixel(mean_padded, 32, 2)  # default fill: the image's mean colour, purple
    assert abs(r - 128) <= 1 and g == 0 and abs(b - 128) <= 1

    cropped = fit_image(image, 32, "crop")  # 64x32 after scaling, centre 32 columns kept
    assert cropped.size == (32, 32)
    assert pixel(cropped, 2, 16) == RED and pixel(cropped, 29, 16) == BLUE


def test_fit_image_rejects_bad_mode_and_size():
    with pytest.raises(ValueError, match="'stretch'.*resize, pad, crop"):
        fit_image(Image.new("RGB", (4, 4)), 8, "stretch")
    with pytest.raises(ValueError, match="positive"):
        fit_image(Image.new("RGB", (4, 4)), 0)


def test_to_pixels_shapes_and_normalisation():
    white, black = Image.new("RGB", (10, 7), WHITE), Image.new("L", (30, 30), 0)
    x = to_pixels([white, black], (16, 8))
    assert x.shape == (2, 3, 8, 16) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.ones(3, 8, 16)) and torch.allclose(x[1], -torch.ones(3, 8, 16))
    clip = to_pixels([white], 4, mean=CLIP_MEAN, std=CLIP_STD)
    expected = (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(clip[0, :, 0, 0], expected)


def test_to_pixels_rejects_empty_list():
    with pytest.raises(ValueError, match="empty"):
        to_pixels([], 32)


@pytest.mark.parametrize(("mean", "std"), [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), (CLIP_MEAN, CLIP_STD)])
def test_from_pixels_inverts_to_pixels(mean, std):
    images = [noise_image(24, 16, seed) for seed in range(2)]
    back = from_pixels(to_pixels(images, (24, 16), mean=mean, std=std), mean=mean, std=std)
    for original, restored in zip(images, back):
        assert np.array_equal(np.asarray(original), np.asarray(restored))


def test_from_pixels_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        from_pixels(torch.zeros(3, 8, 8))


def test_draw_patch_grid_draws_lines_on_cell_borders():
    image = Image.new("RGB", (32, 16), (120, 120, 120))
    drawn = draw_patch_grid(image, 8, min_cell=24)  # zoomed 3x: 24px cells
    assert drawn.size == (96, 48)
    a = np.asarray(drawn).astype(int)
    assert abs(a[12, 24] - 120).max() > 30  # on the line between patch 0 and 1
    assert abs(a[44, 44] - 120).max() == 0  # inside patch 5, away from lines and labels


def test_draw_patch_grid_rejects_non_multiple():
    with pytest.raises(ValueError, match="30x16.*8"):
        draw_patch_grid(Image.new("RGB", (30, 16)), 8)


def test_cli_inspect_prints_grid_and_writes_png(tmp_path, monkeypatch, capsys):
    from alltokens.cli import main

    noise_image(300, 200).save(tmp_path / "scene.png")
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", "scene.png", "--patch", "16", "--size", "224"]) == 0
    out = capsys.readouterr().out
    assert "14x14 patches of 16px = 196 tokens" in out
    drawn = Image.open(tmp_path / "scene-patches.png")
    assert drawn.size == (448, 448)  # 16px patches drawn as 32px cells

    args = ["inspect", "scene.png", "--size", "64", "--patch", "8", "--out", "grid.png", "--tile", "32"]
    assert main([*args, "--max-image-tokens", "40", "--pool"]) == 0
    out = capsys.readouterr().out
    assert "64 tokens" in out and "2x2 pooled" in out and (tmp_path / "grid.png").exists()


def test_cli_inspect_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    from alltokens.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.png").write_text("not pixels")
    assert main(["inspect", "notes.png"]) == 2
    assert "notes.png" in capsys.readouterr().err
    noise_image().save(tmp_path / "ok.png")
    assert main(["inspect", "ok.png", "--tile", "64", "--patch", "8", "--max-image-tokens", "10"]) == 2
    assert "budget of 10" in capsys.readouterr().err
    assert not (tmp_path / "ok-patches.png").exists()  # checked before anything is written
    assert main(["inspect", "ok.png", "--max-image-tokens", "100"]) == 2  # a budget needs a tile size
    assert "give --tile too" in capsys.readouterr().err
