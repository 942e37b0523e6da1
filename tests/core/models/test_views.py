"""Tests of core.models.views: the object crop and the pixels features' HOG.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.models.views import crop_to_object, hog, object_box
from tests.core.models.test_embeddings import item_photo


def test_the_object_crop_centres_the_item_whatever_its_place_in_the_photo(tmp_path):
    left = Image.open(item_photo(tmp_path / "left.png", box=(2, 20, 21, 39))).convert("RGB")
    right = Image.open(item_photo(tmp_path / "right.png", box=(40, 2, 59, 21))).convert("RGB")
    crop_left, background = crop_to_object(left, 32)
    crop_right, _ = crop_to_object(right, 32)
    np.testing.assert_allclose(background, [235, 235, 235])
    np.testing.assert_allclose(np.asarray(crop_left, float), np.asarray(crop_right, float), atol=2)
    centre = np.asarray(crop_left)[16, 16]
    corner = np.asarray(crop_left)[0, 0]
    assert centre.tolist() == [40, 40, 120] and corner.tolist() == [235, 235, 235]


def test_a_busy_background_keeps_the_whole_image():
    noise = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    (left, top, right, bottom), _ = object_box(noise)
    assert right - left == pytest.approx(60 * 1.1) and bottom - top == pytest.approx(60 * 1.1)


def test_hog_of_a_vertical_edge_votes_for_horizontal_gradients():
    images = np.zeros((1, 8, 8), np.float32)
    images[:, :, 4:] = 1.0
    features = hog(images)
    assert features.shape == (1, 1 * 1 * 4 * 9)
    block = features[0, :9]
    assert block.argmax() == 0  # gradient along x: orientation bin 0


def _photo(path, size, *, exif_orientation=None):
    """A textured JPEG or PNG of `size` (width, height) with a darker item in it."""
    rng = np.random.default_rng(sum(size))
    pixels = np.full((size[1], size[0], 3), 230, np.uint8) + rng.integers(0, 20, (size[1], size[0], 3), np.uint8)
    pixels[size[1] // 4: size[1] // 2, size[0] // 3: size[0] // 2] = (40, 60, 150)
    image = Image.fromarray(pixels)
    options = {"quality": 90} if path.suffix == ".jpg" else {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        options["exif"] = exif
    image.save(path, **options)
    return path


@pytest.mark.parametrize("name,size,orientation", [
    ("small.jpg", (320, 427), None),    # the two views' JPEG scales differ: decoded twice
    ("phone.jpg", (1600, 1200), None),  # the same scale for both: decoded once
    ("turned.jpg", (1200, 1600), 6),    # EXIF-rotated
    ("flat.png", (300, 200), None),     # no scaled decode: always once
])
def test_every_view_from_one_read_is_exactly_the_view_made_alone(tmp_path, name, size, orientation):
    from core.models.views import load_object, load_views

    path = _photo(tmp_path / name, size, exif_orientation=orientation)
    requests = [(160, "whole"), (112, "crop"), (56, "crop")]
    together = load_views(path, requests)
    for (side, view), image in zip(requests, together):
        alone = load_object(path, side, view=view)[0]
        assert image.size == (side, side)
        np.testing.assert_array_equal(np.asarray(image), np.asarray(alone))


def test_views_of_a_file_changed_since_the_scan_are_not_made(tmp_path):
    from core.files import ContentChanged
    from core.models.views import load_views

    path = _photo(tmp_path / "a.jpg", (400, 300))
    with pytest.raises(ContentChanged):
        load_views(path, [(160, "whole"), (112, "crop")], root=str(tmp_path), content_hash="0" * 64)
