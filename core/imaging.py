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

import numpy as np
import scipy.fftpack
from PIL import Image, ImageOps, UnidentifiedImageError

#: Longest side, in pixels, of the grayscale image that the pHash and the luma
#: statistics are measured on. pHash itself only looks at a 32x32 reduction;
#: 64 px keeps some detail for the sharpness statistic while letting JPEG
#: decode at 1/4 scale (a 320 px photo decodes to 80 px). Larger values cost
#: mostly in the two resizes: 128 px is about 1.5x slower per image.
ANALYSIS_SIZE = 64
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_EXIF_ORIENTATION = 0x0112
# The same orientation -> transpose table as ImageOps.exif_transpose.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# EXIF orientations 5..8 rotate by 90 degrees, swapping width and height.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_PHASH_SIDE = 32  # imagehash.phash defaults: hash_size 8 * highfreq_factor 4
_PHASH_BITS_SIDE = 8
_LEVELS = np.arange(256, dtype=np.float64)
_SQUARED_LEVELS = _LEVELS * _LEVELS


@dataclass(frozen=True)
class ImageStats:
    """Pixel statistics of the analysis image (see ANALYSIS_SIZE).

    Luma is Pillow's 8-bit "L" conversion (ITU-R 601-2: 0.299 R + 0.587 G + 0.114 B).
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
        return Image.fromarray(scaled).convert("RGB")
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


def phash_hex(image: Image.Image) -> str:
    """64-bit perceptual hash as 16 hex digits; always equal to `str(imagehash.phash(image))`.

    The same steps as imagehash's reference (grayscale, 32x32 Lanczos, 2-D DCT-II
    by scipy.fftpack, low 8x8 block compared with its median), without its
    per-call overhead (hash object, bit-string formatting).
    """
    gray = image if image.mode == "L" else image.convert("L")  # converting L to L only copies
    luma = gray.resize((_PHASH_SIDE, _PHASH_SIDE), Image.Resampling.LANCZOS)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(np.asarray(luma), axis=0), axis=1)
    low = dct[:_PHASH_BITS_SIDE, :_PHASH_BITS_SIDE]
    ordered = np.sort(low, axis=None)
    middle = ordered.size // 2
    median = (ordered[middle - 1] + ordered[middle]) / 2  # what numpy.median computes for an even count
    return np.packbits(low > median).tobytes().hex()


def measure_stats(rgb: Image.Image, *, luma: Optional[Image.Image] = None) -> ImageStats:
    """Pixel statistics of an RGB image (see ImageStats for units).

    luma: its "L" conversion when the caller has one (it may be smaller than
    `rgb`: the luma statistics are measured on it, colorfulness on `rgb`).
    """
    luma = rgb.convert("L") if luma is None else luma
    levels = np.asarray(luma)
    histogram = np.bincount(levels.ravel(), minlength=256).astype(np.float64)
    count = histogram.sum()
    mean = histogram @ _LEVELS / count
    variance = max(histogram @ _SQUARED_LEVELS / count - mean * mean, 0.0)
    probabilities = histogram[histogram > 0] / count
    pixels = levels.astype(np.float64)
    laplacian = (
        pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1] - 4.0 * pixels[1:-1, 1:-1]
    ).ravel()
    sharpness = 0.0
    if laplacian.size:
        lap_mean = laplacian.sum() / laplacian.size
        sharpness = max(laplacian @ laplacian / laplacian.size - lap_mean * lap_mean, 0.0)
    channels = np.asarray(rgb)
    red, green, blue = channels[..., 0], channels[..., 1], channels[..., 2]
    chroma = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    return ImageStats(
        brightness=float(mean / 255.0),
        contrast=float(np.sqrt(variance) / 255.0),
        sharpness=float(sharpness),
        entropy=float(-(probabilities @ np.log2(probabilities))),
        colorfulness=float(chroma.sum() / chroma.size / 255.0),
    )


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright); 1 when the EXIF block is missing or unreadable."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, IndexError):
        return 1  # a damaged EXIF block does not make the pixels unreadable
    return value if isinstance(value, int) else 1


def _analysis_images(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(rgb, luma) of a loaded image: rgb box-reduced to 1..2x ANALYSIS_SIZE, luma at most ANALYSIS_SIZE."""
    rgb = to_rgb(image)
    factor = max(rgb.size) // ANALYSIS_SIZE
    if factor >= 2:
        rgb = rgb.reduce(factor)
    luma = rgb.convert("L")
    if max(luma.size) > ANALYSIS_SIZE:
        luma.thumbnail((ANALYSIS_SIZE, ANALYSIS_SIZE), Image.Resampling.BILINEAR)
    return rgb, luma


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
    """Validate and measure one image given its file bytes. Never raises for bad data.

    The pHash is taken of the EXIF-upright analysis image (at most ANALYSIS_SIZE
    pixels on its longest side), so re-encoded or resized copies hash alike.
    """
    content_hash = sha256_hex(data)
    if not data:
        return ImageInfo(content_hash, error="empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that;
            # both are refused here: such a file is not a listing photo.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on odd files, e.g. corrupt EXIF
            with Image.open(io.BytesIO(data)) as image:
                mode = image.mode
                width, height = image.size  # as stored; draft() shrinks image.size
                image.draft("RGB", (ANALYSIS_SIZE, ANALYSIS_SIZE))
                image.load()
                orientation = _orientation(image)
                rgb, luma = _analysis_images(image)
        if orientation in _ORIENTATION_TRANSPOSE:
            # Statistics are invariant under flips and quarter turns; only the hash needs upright pixels.
            luma = luma.transpose(_ORIENTATION_TRANSPOSE[orientation])
        if orientation in _SWAPPING_ORIENTATIONS:
            width, height = height, width
        phash = phash_hex(luma)
        stats = measure_stats(rgb, luma=luma)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            EOFError, MemoryError, IndexError, TypeError, KeyError, ZeroDivisionError) as error:
        # Pillow's plugins raise any of these on malformed files.
        return ImageInfo(content_hash, error=_describe_error(error))
    return ImageInfo(content_hash, width=width, height=height, mode=mode, phash=phash, stats=stats)
