"""The quality check on real generated images: each kind of poor image is found, normal photos are not flagged."""
from __future__ import annotations

import pytest
from PIL import Image, ImageFilter

from core.audit.checks.quality import QualityCheck, QualityThresholds
from tests.core.audit.checks.photos import photo, save

NORMAL_PER_CLASS = 12
#: file -> the sub-issue it must be flagged for
PROBLEMS = {
    "a/black.jpg": "dark",
    "a/white.jpg": "light",
    "a/blurred.jpg": "blurry",
    "a/flat.jpg": "low_information",
    "b/strip.jpg": "odd_aspect_ratio",
    "b/tiny.png": "odd_size",
    "b/gray.jpg": "grayscale",
}


def write_normal_photos(root, *, per_class=NORMAL_PER_CLASS, blur=0.0):
    for index in range(2 * per_class):
        image = photo(index)
        if blur:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        save(image, root / ("a" if index % 2 else "b") / f"photo-{index}.jpg")


def write_problem_photos(root):
    save(Image.new("RGB", (160, 120), (0, 0, 0)), root / "a/black.jpg")
    save(Image.new("RGB", (160, 120), (255, 255, 255)), root / "a/white.jpg")
    save(photo(100).filter(ImageFilter.GaussianBlur(4)), root / "a/blurred.jpg")
    save(Image.new("RGB", (160, 120), (120, 140, 90)), root / "a/flat.jpg")
    save(photo(101, (400, 40)), root / "b/strip.jpg")
    save(photo(102, (16, 16)), root / "b/tiny.png")
    save(photo(103).convert("L"), root / "b/gray.jpg")


def flagged_issues(result, context) -> dict[str, list[str]]:
    """path -> sub-issues, for flagged samples."""
    flagged = result.flagged()
    return {context.samples.at[sample_id, "path"]: evidence["issues"]
            for sample_id, evidence in zip(flagged.index, flagged["evidence"])}


def test_each_poor_image_is_flagged_for_its_problem_and_normal_photos_are_not(tmp_path, scanned_context):
    write_normal_photos(tmp_path)
    write_problem_photos(tmp_path)
    context = scanned_context(tmp_path)
    result = QualityCheck().find_issues(context)
    found = flagged_issues(result, context)
    assert set(found) == set(PROBLEMS), found
    for path, issue in PROBLEMS.items():
        assert issue in found[path], (path, found[path])
    assert "dark" in found["a/black.jpg"] and "low_information" in found["a/black.jpg"]
    scores = result.issues.set_index(context.samples["path"])["quality_score"]
    assert all(scores[path] < 0.5 for path in PROBLEMS)
    assert all(scores.drop(list(PROBLEMS)) >= 0.5)
    assert result.summary["by_issue"]["blurry"] == 1 and result.summary["dataset"]["colour_dataset"]
    assert result.issues.loc[result.issues["is_quality_issue"], "reason"].str.len().gt(0).all()


def test_blur_is_judged_against_the_dataset_so_a_uniformly_soft_dataset_is_not_flagged(tmp_path, scanned_context):
    write_normal_photos(tmp_path, blur=4.0)
    context = scanned_context(tmp_path)
    result = QualityCheck().find_issues(context)
    assert not result.issues["is_quality_issue"].any()


def test_grayscale_is_not_flagged_in_a_grayscale_dataset(tmp_path, scanned_context):
    for index in range(12):
        save(photo(index).convert("L"), tmp_path / "a" / f"gray-{index}.jpg")
    result = QualityCheck().find_issues(scanned_context(tmp_path))
    assert not result.issues["is_grayscale"].any()
    assert not result.summary["dataset"]["colour_dataset"]


def test_small_datasets_get_only_the_absolute_thresholds(tmp_path, scanned_context):
    write_normal_photos(tmp_path, per_class=2)
    save(photo(100).filter(ImageFilter.GaussianBlur(4)), tmp_path / "a/blurred.jpg")
    save(photo(102, (16, 16)), tmp_path / "b/tiny.png")
    save(photo(103).convert("L"), tmp_path / "b/gray.jpg")
    context = scanned_context(tmp_path)
    result = QualityCheck().find_issues(context)
    assert flagged_issues(result, context) == {"b/tiny.png": ["odd_size"]}
    assert result.summary["dataset"] == {"blur_threshold": None, "min_size": None, "colour_dataset": False}


@pytest.mark.parametrize("thresholds, issue", [
    (QualityThresholds(max_aspect_ratio=1.2), "odd_aspect_ratio"),
    (QualityThresholds(dark_max_bright_end=1.5), "dark"),
])
def test_thresholds_are_options(tmp_path, scanned_context, thresholds, issue):
    write_normal_photos(tmp_path, per_class=3)
    result = QualityCheck(thresholds=thresholds).find_issues(scanned_context(tmp_path))
    assert result.issues[f"is_{issue}"].all()
