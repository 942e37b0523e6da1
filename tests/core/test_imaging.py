"""Tests of core/imaging.py on real tiny image files: every mode, broken bytes, bombs, EXIF rotation, pHash."""
from __future__ import annotations

import io
import struct
import zlib

import imagehash
import numpy as np
import pytest
from PIL import Image

import core.imaging
from core.imaging import (
    ANALYSIS_SIZE, AVIF_SUPPORTED, IMAGE_EXTENSIONS, inspect_image_bytes, measure_stats, open_rgb, phash_hex,
    sha256_hex, to_rgb,
)
from tests.conftest import make_image


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height 8-bit gray pixels (the data is empty)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def inspect_path(path):
    return inspect_image_bytes(path.read_bytes())


@pytest.mark.parametrize("name, mode", [
    ("rgb.jpg", "RGB"), ("gray.jpg", "L"), ("cmyk.jpg", "CMYK"), ("rgb.png", "RGB"), ("gray16.png", "I;16"),
    ("palette.png", "P"), ("alpha.png", "RGBA"), ("gray_alpha.png", "LA"), ("rgb.webp", "RGB"),
    ("rgb.bmp", "RGB"), ("palette.gif", "P"), ("rgb.tiff", "RGB"), ("bilevel.png", "1"),
])
def test_every_mode_is_readable_with_its_size_stats_and_phash(tmp_path, name, mode):
    path = make_image(tmp_path / name, size=(48, 30), mode=mode)
    info = inspect_path(path)
    assert info.error is None
    assert (info.width, info.height) == (48, 30)
    assert info.content_hash == sha256_hex(path.read_bytes())
    assert len(info.phash) == 16 and int(info.phash, 16) >= 0
    stats = info.stats
    assert 0 < stats.brightness < 1 and 0 < stats.contrast < 0.5
    assert stats.sharpness > 0 and 0 < stats.entropy <= 8
    assert 0 <= stats.colorfulness <= 1


def test_gray_images_have_no_colour_and_colour_images_do(tmp_path):
    gray = inspect_path(make_image(tmp_path / "g.png", mode="L"))
    colour = inspect_path(make_image(tmp_path / "c.png", mode="RGB"))
    assert gray.stats.colorfulness == 0
    assert colour.stats.colorfulness > 0.1


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    eight = inspect_path(make_image(tmp_path / "same.png", mode="L"))
    sixteen = inspect_path(make_image(tmp_path / "sub" / "same.png", mode="I;16"))
    assert sixteen.mode == "I;16"
    assert sixteen.stats.brightness == pytest.approx(eight.stats.brightness, abs=0.01)


def test_transparent_pixels_are_composited_on_white(tmp_path):
    info = inspect_path(make_image(tmp_path / "clear.png", color=(0, 0, 0, 0), mode="RGBA"))
    assert info.stats.brightness == pytest.approx(1.0)


def test_flat_image_has_zero_contrast_sharpness_and_entropy(tmp_path):
    info = inspect_path(make_image(tmp_path / "flat.png", color=(90, 90, 90)))
    assert info.stats.contrast == 0 and info.stats.sharpness == 0 and info.stats.entropy == 0
    assert info.stats.brightness == pytest.approx(90 / 255)


def test_blur_lowers_sharpness(tmp_path):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, size=(64, 64), dtype=np.uint8))
    sharp_path, blurred_path = tmp_path / "sharp.png", tmp_path / "blurred.png"
    noise.save(sharp_path)
    noise.resize((8, 8), Image.Resampling.BOX).resize((64, 64), Image.Resampling.BILINEAR).save(blurred_path)
    assert inspect_path(blurred_path).stats.sharpness < inspect_path(sharp_path).stats.sharpness / 10


def test_exif_rotated_photo_reports_upright_size_and_upright_hash(tmp_path):
    upright = make_image(tmp_path / "upright.png", size=(20, 40))
    stored_sideways = Image.open(upright).transpose(Image.Transpose.ROTATE_90)  # 40 x 20 as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rotated = tmp_path / "rotated.png"
    stored_sideways.save(rotated, exif=exif.tobytes())
    rotated_jpeg = tmp_path / "rotated.jpg"
    stored_sideways.save(rotated_jpeg, exif=exif.tobytes(), quality=95)

    info = inspect_path(rotated)
    assert (info.width, info.height) == (20, 40)
    assert info.phash == inspect_path(upright).phash
    jpeg_info = inspect_path(rotated_jpeg)
    assert (jpeg_info.width, jpeg_info.height) == (20, 40)
    not_rotated = tmp_path / "not_rotated.png"
    stored_sideways.save(not_rotated)
    sideways = inspect_path(not_rotated)
    jpeg_hash = imagehash.hex_to_hash(jpeg_info.phash)
    assert jpeg_hash - imagehash.hex_to_hash(info.phash) < jpeg_hash - imagehash.hex_to_hash(sideways.phash)
    assert open_rgb(rotated).size == (20, 40)


def test_damaged_exif_does_not_make_the_image_unreadable(tmp_path):
    path = tmp_path / "bad_exif.jpg"
    Image.new("RGB", (16, 16), (10, 200, 30)).save(path, exif=b"Exif\x00\x00MM\x00*garbage")
    info = inspect_path(path)
    assert info.error is None and (info.width, info.height) == (16, 16)


def test_empty_file_is_reported(tmp_path):
    info = inspect_image_bytes(b"")
    assert info.error == "empty file (0 bytes)"
    assert info.content_hash == sha256_hex(b"")


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.9, -2])
def test_truncated_jpeg_fails_validation(tmp_path, keep):
    """Decoding at reduced size must still read every byte: any truncation is an error."""
    data = make_image(tmp_path / "photo.jpg", size=(320, 240), quality=90).read_bytes()
    cut = data[:keep] if isinstance(keep, int) else data[: int(len(data) * keep)]
    info = inspect_image_bytes(cut)
    assert info.error is not None and info.error.startswith("truncated image")
    assert info.phash is None and info.stats is None


def test_truncated_png_fails_validation(tmp_path):
    data = make_image(tmp_path / "pic.png", size=(64, 64)).read_bytes()
    assert inspect_image_bytes(data[: len(data) // 2]).error is not None


@pytest.mark.parametrize("content", [b"hello, this is a text file", b"\x00" * 100, b"%PDF-1.4\n..."])
def test_non_image_bytes_are_not_an_image(content):
    assert inspect_image_bytes(content).error.startswith("not an image")


def test_corrupt_jpeg_body_fails(tmp_path):
    data = bytearray(make_image(tmp_path / "photo.jpg", size=(64, 64)).read_bytes())
    data[200:] = b"\xff\x00" * ((len(data) - 200) // 2) + b"\xff\xd9"[: (len(data) - 200) % 2]
    assert inspect_image_bytes(bytes(data)).error is not None


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_decompression_bomb_is_refused_not_decoded(side):
    """Above Pillow's MAX_IMAGE_PIXELS (warning) and twice it (error): both refused with a clear reason."""
    assert side * side > Image.MAX_IMAGE_PIXELS
    info = inspect_image_bytes(png_header_claiming(side, side))
    assert info.error.startswith("image too large")
    assert str(side * side) in info.error


def test_analysis_is_done_at_reduced_size_but_reports_the_file_size(tmp_path):
    info = inspect_path(make_image(tmp_path / "big.jpg", size=(1000, 600)))
    assert (info.width, info.height) == (1000, 600)
    assert ANALYSIS_SIZE < 600


def test_phash_hex_equals_imagehash_reference_on_many_images(tmp_path):
    """phash_hex is a faster imagehash.phash: bit-identical on varied content, modes and sizes."""
    rng = np.random.default_rng(7)
    images = [Image.new("L", (40, 40), 128), Image.new("RGB", (33, 17), (255, 0, 0))]  # flat: all-tie medians
    for index in range(300):
        width, height = (int(v) for v in rng.integers(8, 200, size=2))
        blocks = rng.integers(0, 256, size=(int(rng.integers(1, 9)), int(rng.integers(1, 9)), 3), dtype=np.uint8)
        image = Image.fromarray(blocks).resize((width, height), Image.Resampling.BICUBIC)
        if index % 3 == 0:
            image = Image.fromarray(np.clip(np.asarray(image) + rng.normal(0, 20, (height, width, 3)), 0, 255)
                                    .astype(np.uint8))
        images.append(image.convert(["RGB", "L", "RGBA", "P"][index % 4]))
    for image in images:
        assert phash_hex(image) == str(imagehash.phash(image))


def test_measure_stats_matches_float_reference(tmp_path):
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8))
    luma = np.asarray(rgb.convert("L"), dtype=np.float64)
    pixels = np.asarray(rgb, dtype=np.float64)
    laplacian = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4 * luma[1:-1, 1:-1]
    histogram = np.bincount(luma.astype(np.uint8).ravel(), minlength=256)
    p = histogram[histogram > 0] / histogram.sum()
    stats = measure_stats(rgb)
    assert stats.brightness == pytest.approx(luma.mean() / 255)
    assert stats.contrast == pytest.approx(luma.std() / 255)
    assert stats.sharpness == pytest.approx(laplacian.var())
    assert stats.entropy == pytest.approx(-(p * np.log2(p)).sum())
    assert stats.colorfulness == pytest.approx((pixels.max(axis=2) - pixels.min(axis=2)).mean() / 255)


def test_open_rgb_reduces_to_max_side(tmp_path):
    path = make_image(tmp_path / "p.jpg", size=(300, 150))
    image = open_rgb(path, max_side=64)
    assert image.mode == "RGB" and max(image.size) == 64
    assert open_rgb(path).size == (300, 150)


# --- decode budget, formats, pHash relation ----------------------------------------------------------


def test_images_above_the_decode_budget_are_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(core.imaging, "MAX_DECODE_BYTES", 9 * 5000)  # 5,000 pixels; 2,812 for WebP
    assert inspect_path(make_image(tmp_path / "ok.png", size=(70, 70))).error is None
    refused = inspect_path(make_image(tmp_path / "big.png", size=(80, 80)))
    assert refused.error == ("image too large to inspect: 80 x 80 pixels (0.0 million) is more than the "
                             "0.0 million pixels the scan decodes for a PNG image")
    assert refused.content_hash and refused.phash is None
    assert inspect_path(make_image(tmp_path / "big.webp", size=(60, 60))).error.startswith("image too large")
    # A JPEG is measured after its reduced decode: 512 px decodes at 1/8, 64 x 64 pixels.
    jpeg = inspect_path(make_image(tmp_path / "photo.jpg", size=(512, 512)))
    assert jpeg.error is None and (jpeg.width, jpeg.height) == (512, 512)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "PA", "1", "I;16", "I", "F", "CMYK", "L"])
def test_images_are_reduced_before_conversion_with_the_same_statistics(tmp_path, mode):
    """Reducing first (no full-size RGB copy) measures what converting the whole image first measured."""
    rng = np.random.default_rng(5)
    blocks = rng.integers(0, 256, size=(4, 6, 4), dtype=np.uint8)
    image = Image.fromarray(blocks, "RGBA").resize((300, 200), Image.Resampling.BILINEAR)
    if mode == "PA":
        image = image.convert("P").convert("PA")
    elif mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    elif mode in ("I", "F"):
        image = image.convert("L").convert(mode)
    else:
        image = image.convert(mode)
    data = io.BytesIO()
    image.save(data, "TIFF" if mode in ("I", "F", "CMYK", "PA") else "PNG")
    stats = inspect_image_bytes(data.getvalue()).stats
    full = to_rgb(image.convert("RGBA") if mode in ("P", "PA") else image)
    reference = measure_stats(full.reduce(max(full.size) // ANALYSIS_SIZE))
    assert stats.brightness == pytest.approx(reference.brightness, abs=0.01)
    assert stats.colorfulness == pytest.approx(reference.colorfulness, abs=0.01)


def test_only_listing_photo_formats_are_decoded(tmp_path):
    """A file in another Pillow format (ICO here; EPS would run Ghostscript) is not an image to the scan."""
    icon = tmp_path / "icon.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(icon, format="ICO")
    assert inspect_path(icon).error.startswith("not an image: the file's contents are not JPEG, PNG")
    jpeg_named_png = tmp_path / "photo.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(jpeg_named_png, format="JPEG")
    assert inspect_path(jpeg_named_png).error is None


@pytest.mark.skipif(not AVIF_SUPPORTED, reason="this Pillow cannot decode AVIF")
def test_avif_is_inspected(tmp_path):
    assert ".avif" in IMAGE_EXTENSIONS
    info = inspect_path(make_image(tmp_path / "a.avif", size=(40, 30)))
    assert info.error is None and (info.width, info.height) == (40, 30) and len(info.phash) == 16


def photo_like(path, size: tuple[int, int], seed: int, **save_options):
    """A colour image with smooth shapes and grain, saved to `path`."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(blocks).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-10, 11, size=smooth.shape, dtype=np.int16)
    Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(path, **save_options)
    return path


def test_stored_phash_is_imagehash_phash_of_the_file_when_nothing_is_reduced(tmp_path):
    """RGB images of at most ANALYSIS_SIZE px are hashed whole: exactly `imagehash.phash(Image.open(path))`."""
    for index, (size, suffix) in enumerate([((64, 48), "png"), ((60, 64), "jpg"), ((33, 21), "webp"),
                                            ((64, 64), "bmp")]):
        path = photo_like(tmp_path / f"{index}.{suffix}", size, seed=index)
        assert inspect_path(path).phash == str(imagehash.phash(Image.open(path))), path


def test_stored_phash_of_larger_photos_is_near_imagehash_phash_of_the_file(tmp_path):
    """Larger images are hashed after the reduced decode: within the near-duplicate distance (12 bits)
    of `imagehash.phash(Image.open(path))`, not always equal (see inspect_image_bytes)."""
    distances = []
    for index in range(12):
        size = [(320, 240), (800, 600), (150, 400)][index % 3]
        path = photo_like(tmp_path / f"{index}.{['jpg', 'png'][index % 2]}", size, seed=100 + index)
        stored = imagehash.hex_to_hash(inspect_path(path).phash)
        distances.append(stored - imagehash.phash(Image.open(path)))
    assert max(distances) <= 12, distances
