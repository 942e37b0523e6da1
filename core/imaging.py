"""Decode one image file and measure it: validity, sha256, pHash, size and pixel statistics.

Pure function of the file's bytes (`inspect_image_bytes`); the scanner calls it in
worker processes. Images are decoded at reduced size where the format allows it
(JPEG draft mode): every byte of entropy-coded data is still read, so truncation
and corruption are caught, but the IDCT runs at 1/2..1/8 scale.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Optional

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Longest side, in pixels, of the thumbnail that hashes and statistics are measured on.
ANALYSIS_SIZE = 256
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# EXIF orientations 5..8 rotate by 90 degrees, swapping width and height.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageStats:
    """Pixel statistics of the analysis thumbnail.

    brightness: mean luma in [0, 1]; contrast: std of luma in [0, 1];
    sharpness: variance of the 4-neighbour Laplacian of 0..255 luma (blur -> small);
    entropy: Shannon entropy of the 256-bin luma histogram, bits in [0, 8];
    colorfulness: mean of max(R,G,B) - min(R,G,B) in [0, 1] (0 for gray images).
    """

    brightness: float
    contrast: float
    sharpness: float
    entropy: float
    colorfulness: float


@dataclass(frozen=True)
class ImageInfo:
    """What inspecting one file found. `error` is None exactly when the image decoded."""

    content_hash: Optional[str]  # sha256 hex of the file bytes; None when the file could not be read
    error: Optional[str] = None
    width: Optional[int] = None  # pixels, after EXIF rotation
    height: Optional[int] = None
    mode: Optional[str] = None  # PIL mode as stored in the file
    phash: Optional[str] = None  # 16 hex digits
    stats: Optional[ImageStats] = None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: 16-bit and float scaled, alpha composited on white."""
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        array = np.asarray(image, dtype=np.float64)
        high = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        if image.mode == "F":
            high = max(float(array.max(initial=0)), 1e-12)
        scaled = np.clip(array / high * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_rgb(source, *, max_side: Optional[int] = None) -> Image.Image:
    """Open an image file or file object as EXIF-upright RGB, at most `max_side` pixels on its longest side."""
    with Image.open(source) as image:
        if max_side is not None:
            image.draft("RGB", (max_side, max_side))
        upright = ImageOps.exif_transpose(image)
        rgb = to_rgb(upright)
    if max_side is not None:
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return rgb


def measure_stats(rgb: Image.Image) -> ImageStats:
    """Pixel statistics of an RGB image (see ImageStats for units)."""
    pixels = np.asarray(rgb, dtype=np.float32)
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    laplacian = (
        luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4.0 * luma[1:-1, 1:-1]
    )
    histogram = np.bincount(np.clip(luma, 0, 255).astype(np.uint8).ravel(), minlength=256)
    probabilities = histogram[histogram > 0] / histogram.sum()
    chroma = pixels.max(axis=2) - pixels.min(axis=2)
    return ImageStats(
        brightness=float(luma.mean() / 255.0),
        contrast=float(luma.std() / 255.0),
        sharpness=float(laplacian.var()) if laplacian.size else 0.0,
        entropy=float(-(probabilities * np.log2(probabilities)).sum()),
        colorfulness=float(chroma.mean() / 255.0),
    )


def _upright_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def _describe_error(error: BaseException) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not an image: the file's contents are not a format Pillow can read"
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"image too large: {error}"
    text = str(error) or type(error).__name__
    if "truncated" in text.lower():
        return f"truncated image: {text}"
    return f"cannot decode: {text}"


def inspect_image_bytes(data: bytes) -> ImageInfo:
    """Validate and measure one image given its file bytes. Never raises for bad data."""
    content_hash = sha256_hex(data)
    if not data:
        return ImageInfo(content_hash, error="empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that;
            # both are refused here: such a file is not a listing photo.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                mode = image.mode
                width, height = _upright_size(image)
                image.draft("RGB", (ANALYSIS_SIZE, ANALYSIS_SIZE))
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = to_rgb(upright)
        rgb.thumbnail((ANALYSIS_SIZE, ANALYSIS_SIZE), Image.Resampling.BILINEAR)
        phash = str(imagehash.phash(rgb))
        stats = measure_stats(rgb)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            EOFError, MemoryError, IndexError, TypeError, KeyError, ZeroDivisionError) as error:
        # Pillow's plugins raise any of these on malformed files.
        return ImageInfo(content_hash, error=_describe_error(error))
    return ImageInfo(content_hash, width=width, height=height, mode=mode, phash=phash, stats=stats)
