"""The `quality` check: images a buyer would find poor, from the statistics the scan stored.

Sub-issues (an image can have several): dark, light, blurry, low_information,
odd_aspect_ratio, odd_size, grayscale (in a colour dataset). Absolute thresholds
where the quantity means the same in every dataset (brightness, entropy, aspect
ratio, pixel size); dataset-relative ones where it does not (sharpness depends on
the content and on how the photos were made; "small" and "grayscale" depend on
what the rest of the dataset looks like). Every threshold is in QualityThresholds
and documented in docs/checks.md.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import pandas as pd

from core.audit.checks.base import AuditContext, Check, CheckResult, register

#: PIL modes that hold no colour at all.
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
QUALITY_ISSUES = ("dark", "light", "blurry", "low_information", "odd_aspect_ratio", "odd_size", "grayscale")
#: Robust standard deviations per median absolute deviation of a normal distribution.
MAD_TO_SD = 1.4826
#: Score of a grayscale image in a colour dataset (it is either grayscale or not: no degree).
GRAYSCALE_SCORE = 0.4


@dataclass(frozen=True)
class QualityThresholds:
    """Where each sub-issue starts. Brightness and contrast are in [0, 1] (mean and std of luma).

    dark_max_bright_end: dark when brightness + 2 * contrast (roughly the bright end of the
        luma histogram) is below this: even the image's brightest parts are dark.
    light_min_dark_end: light (washed out) when brightness - 2 * contrast is above this.
    blur_mads, blur_min_factor: blurry when log(sharpness / (255 * contrast)^2) is below the
        dataset median by more than blur_mads robust SDs and by at least log(blur_min_factor).
        Dividing by the luma variance makes the Laplacian variance independent of contrast.
    blur_min_contrast: images flatter than this are not judged for blur (low_information covers them).
    low_information_entropy: luma histogram entropy in bits below which an image carries almost
        nothing (a flat or nearly flat picture).
    max_aspect_ratio: longer side / shorter side above this is odd for a listing photo.
    min_side: pixels; an image whose shorter side is smaller is too small whatever the dataset.
    min_size_fraction: too small also when sqrt(width * height) is below this fraction of the dataset median.
    grayscale_max_colorfulness: an RGB image with mean chroma spread at or below this has no
        measurable colour (R = G = B up to rounding); files stored in a gray mode are grayscale too.
    colour_dataset_share: grayscale is flagged only when at least this share of the images are colour.
    min_reference_images: dataset-relative thresholds (blur, relative size, grayscale) need this many
        readable images; with fewer they are not applied.
    """

    dark_max_bright_end: float = 0.20
    light_min_dark_end: float = 0.94
    blur_mads: float = 4.0
    blur_min_factor: float = 8.0
    blur_min_contrast: float = 0.01
    low_information_entropy: float = 0.75
    max_aspect_ratio: float = 3.0
    min_side: int = 32
    min_size_fraction: float = 0.25
    grayscale_max_colorfulness: float = 0.0002
    colour_dataset_share: float = 0.5
    min_reference_images: int = 10


@dataclass(frozen=True)
class DatasetReference:
    """The dataset-relative thresholds in force (None where too few images to set one)."""

    blur_threshold: Optional[float]  # normalised sharpness below which an image is blurry
    min_size: Optional[float]  # sqrt(width * height) below which an image is small for this dataset
    colour_dataset: bool


def _low_score(value: np.ndarray, threshold: float) -> np.ndarray:
    """Score for "too low" measures: 0.5 at the threshold, 0 at zero, capped at 1."""
    return np.clip(0.5 * value / threshold, 0.0, 1.0)


def normalised_sharpness(samples: pd.DataFrame, *, min_contrast: float) -> np.ndarray:
    """Laplacian variance / luma variance (both on 0..255), shape (N,); NaN for near-flat images."""
    luma_variance = (255.0 * samples["contrast"].to_numpy(dtype=float)) ** 2
    sharpness = samples["sharpness"].to_numpy(dtype=float)
    flat = ~(samples["contrast"].to_numpy(dtype=float) >= min_contrast)
    return np.where(flat, np.nan, sharpness / np.where(flat, 1.0, luma_variance))


def is_grayscale(samples: pd.DataFrame, *, max_colorfulness: float) -> np.ndarray:
    """Whether each image holds no colour: a gray file mode, or no measurable chroma. Shape (N,)."""
    gray_mode = samples["mode"].isin(GRAYSCALE_MODES).to_numpy()
    return gray_mode | (samples["colorfulness"].to_numpy(dtype=float) <= max_colorfulness)


def dataset_reference(samples: pd.DataFrame, thresholds: QualityThresholds) -> DatasetReference:
    """The dataset-relative thresholds, from all readable images of the audit."""
    if len(samples) < thresholds.min_reference_images:
        return DatasetReference(None, None, False)
    log_sharpness = np.log(normalised_sharpness(samples, min_contrast=thresholds.blur_min_contrast))
    log_sharpness = log_sharpness[np.isfinite(log_sharpness)]
    blur_threshold = None
    if len(log_sharpness) >= thresholds.min_reference_images:
        median = float(np.median(log_sharpness))
        spread = MAD_TO_SD * float(np.median(np.abs(log_sharpness - median)))
        gap = max(thresholds.blur_mads * spread, math.log(thresholds.blur_min_factor))
        blur_threshold = math.exp(median - gap)
    typical_side = float(np.median(np.sqrt(samples["width"].to_numpy(dtype=float) *
                                           samples["height"].to_numpy(dtype=float))))
    colour_share = 1.0 - float(is_grayscale(samples, max_colorfulness=thresholds.grayscale_max_colorfulness).mean())
    return DatasetReference(blur_threshold, thresholds.min_size_fraction * typical_side,
                            colour_share >= thresholds.colour_dataset_share)


def sub_issue_scores(samples: pd.DataFrame, thresholds: QualityThresholds,
                     reference: DatasetReference) -> pd.DataFrame:
    """Score per sub-issue (columns QUALITY_ISSUES), in [0, 1], below 0.5 exactly when the issue is present."""
    brightness = samples["brightness"].to_numpy(dtype=float)
    contrast = samples["contrast"].to_numpy(dtype=float)
    width = samples["width"].to_numpy(dtype=float)
    height = samples["height"].to_numpy(dtype=float)
    scores = pd.DataFrame(1.0, index=samples.index, columns=list(QUALITY_ISSUES))
    scores["dark"] = _low_score(brightness + 2 * contrast, thresholds.dark_max_bright_end)
    scores["light"] = _low_score(1.0 - (brightness - 2 * contrast), 1.0 - thresholds.light_min_dark_end)
    scores["low_information"] = _low_score(samples["entropy"].to_numpy(dtype=float),
                                           thresholds.low_information_entropy)
    aspect = np.maximum(width, height) / np.maximum(np.minimum(width, height), 1.0)
    scores["odd_aspect_ratio"] = _low_score(thresholds.max_aspect_ratio / aspect, 1.0)
    size_score = _low_score(np.minimum(width, height), thresholds.min_side)
    if reference.min_size is not None:
        size_score = np.minimum(size_score, _low_score(np.sqrt(width * height), reference.min_size))
    scores["odd_size"] = size_score
    if reference.blur_threshold is not None:
        sharpness = normalised_sharpness(samples, min_contrast=thresholds.blur_min_contrast)
        scores["blurry"] = np.where(np.isnan(sharpness), 1.0, _low_score(np.nan_to_num(sharpness),
                                                                         reference.blur_threshold))
    if reference.colour_dataset:
        gray = is_grayscale(samples, max_colorfulness=thresholds.grayscale_max_colorfulness)
        scores["grayscale"] = np.where(gray, GRAYSCALE_SCORE, 1.0)
    return scores.fillna(1.0)


def _evidence(row, found: list[str]) -> dict:
    return {
        "issues": found,
        "brightness": row.brightness, "contrast": row.contrast, "sharpness": row.sharpness,
        "entropy": row.entropy, "colorfulness": row.colorfulness,
        "width": int(row.width), "height": int(row.height), "mode": row.mode,
    }


@register
class QualityCheck(Check):
    """Dark, light, blurry, low-information, oddly shaped, tiny and grayscale-in-colour images."""

    name = "quality"

    def __init__(self, *, thresholds: QualityThresholds = QualityThresholds()):
        self.thresholds = thresholds

    def find_issues(self, context: AuditContext) -> CheckResult:
        samples = context.samples
        reference = dataset_reference(samples, self.thresholds)
        scores = sub_issue_scores(samples, self.thresholds, reference)
        present = scores < 0.5
        found = [list(scores.columns[row]) for row in present.to_numpy()]
        issues = pd.DataFrame({
            "is_quality_issue": present.any(axis=1).to_numpy(),
            "quality_score": scores.min(axis=1).to_numpy(),
            "suggested_label": None,
            "group": None,
            "reason": ["; ".join(name.replace("_", " ") for name in names) or None for names in found],
            "evidence": [_evidence(row, names) if names else {}
                         for row, names in zip(samples.itertuples(), found)],
        }, index=samples.index)
        for name in QUALITY_ISSUES:
            issues[f"is_{name}"] = present[name].to_numpy()
        context.progress(1.0, f"{int(issues['is_quality_issue'].sum())} poor images")
        summary = {
            "flagged": int(issues["is_quality_issue"].sum()),
            "by_issue": {name: int(present[name].sum()) for name in QUALITY_ISSUES},
            "thresholds": asdict(self.thresholds),
            "dataset": asdict(reference),
        }
        return self.result(issues, summary)
