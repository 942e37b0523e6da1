"""Tests of ui/thumbnails.py: real images in, small upright JPEGs out; placeholders for files that cannot be shown."""
from __future__ import annotations

import io
import os

from PIL import Image

from tests.conftest import make_image
from ui.thumbnails import (
    LETTERBOX_FILL, THUMBNAIL_SIDE, placeholder_jpeg, render_jpeg, thumbnail, unreadable_placeholder,
)


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def test_thumbnail_of_a_large_photo_fits_the_side_and_keeps_aspect(tmp_path):
    path = make_image(tmp_path / "wide.jpg", size=(1200, 600))
    data, problem = render_jpeg(str(path), max_side=THUMBNAIL_SIDE)
    assert problem is None
    assert _decode(data).size == (160, 80)


def _close(pixel: tuple, colour: tuple, tolerance: int = 12) -> bool:
    """Equal but for JPEG's rounding."""
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def test_thumbnails_are_square_with_the_whole_photo_centred_on_a_band(tmp_path):
    stat_of = lambda path: (str(path), path.stat().st_mtime_ns, path.stat().st_size)  # noqa: E731
    wide = _decode(thumbnail(*stat_of(make_image(tmp_path / "wide.jpg", size=(1200, 600), color=(200, 30, 30)))))
    tall = _decode(thumbnail(*stat_of(make_image(tmp_path / "tall.png", size=(30, 120), color=(30, 30, 200)))))
    assert wide.size == (160, 160) and tall.size == (120, 120)  # the longest side, never enlarged
    assert _close(wide.getpixel((80, 5)), LETTERBOX_FILL) and _close(wide.getpixel((80, 154)), LETTERBOX_FILL)
    assert _close(wide.getpixel((2, 80)), (200, 30, 30)) and _close(wide.getpixel((157, 80)), (200, 30, 30))
    assert _close(tall.getpixel((10, 60)), LETTERBOX_FILL) and _close(tall.getpixel((60, 2)), (30, 30, 200))


def test_exif_rotated_photo_is_shown_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = make_image(tmp_path / "rotated.jpg", size=(200, 100), exif=exif.tobytes())
    data, _ = render_jpeg(str(path), max_side=100)
    assert _decode(data).size == (50, 100)


def test_undecodable_and_missing_files_get_a_placeholder_with_the_problem(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    data, problem = render_jpeg(str(broken), max_side=THUMBNAIL_SIDE)
    assert problem.startswith("cannot decode") and _decode(data).size == (160, 160)
    data, problem = render_jpeg(str(tmp_path / "gone.png"), max_side=THUMBNAIL_SIDE)
    assert problem.startswith("file not found") and _decode(data).size == (160, 160)


def test_placeholder_is_a_square_jpeg_with_text():
    plain = _decode(placeholder_jpeg("", side=120))
    written = _decode(placeholder_jpeg("unreadable: truncated image", side=120))
    assert written.size == (120, 120)
    assert written.convert("L").getextrema()[0] < plain.convert("L").getextrema()[0]  # some ink was drawn
    assert _decode(unreadable_placeholder("empty file (0 bytes)")).size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE)


def test_cached_thumbnail_is_rendered_again_when_the_file_changes(tmp_path):
    path = make_image(tmp_path / "photo.png", size=(64, 64), color=(255, 0, 0))
    stat = path.stat()
    red = thumbnail(str(path), stat.st_mtime_ns, stat.st_size)
    make_image(path, size=(64, 32), color=(0, 0, 255))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert thumbnail(str(path), stat.st_mtime_ns, stat.st_size) == red  # same version: from the cache
    changed = path.stat()
    blue = _decode(thumbnail(str(path), changed.st_mtime_ns, changed.st_size))
    assert blue.size == (64, 64) and blue.getpixel((10, 32))[2] > 200
