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
