"""Decode one image file and measure it: validity, sha256, pHash, size and pixel statistics.

Pure function of the file's bytes (`inspect_image_bytes`); the scanner calls it in
worker processes. Images are decoded at reduced size where the format allows it
(JPEG draft mode): every byte of entropy-coded data is still read, so truncation
and corruption are caught, but the IDCT runs at 1/2..1/8 scale. Other formats
are decoded whole, within MAX_DECODE_BYTES, and reduced before any conversion.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.fftpack
from PIL import Image, ImageOps, UnidentifiedImageError, features

from core.files import open_regular

#: Longest side, in pixels, of the grayscale image that the pHash and the luma
#: statistics are measured on. pHash itself only looks at a 32x32 reduction;
#: 64 px keeps some detail for the sharpness statistic while letting JPEG
#: decode at 1/4 scale (a 320 px photo decodes to 80 px). Larger values cost
#: mostly in the two resizes: 128 px is about 1.5x slower per image.
ANALYSIS_SIZE = 64
#: Memory one image may take to decode and reduce, bytes. Pillow holds up to 4
#: bytes a pixel, and reducing a transparent image makes one more copy: about 9
#: bytes a pixel at worst (a palette image with transparency); WebP's decoder
#: holds its own copy too (about 16). 360 MB keeps a worker under 500 MB and
#: allows 40 million pixels (22 million for WebP). JPEGs are decoded at 1/8
#: scale or less, so every JPEG Pillow opens fits. A larger image (a 9000 x 9000
#: PNG took 1.6 GB) is reported as "image too large to inspect", not decoded.
MAX_DECODE_BYTES = 360_000_000
_DECODE_BYTES_PER_PIXEL = {"WEBP": 16}
_DEFAULT_DECODE_BYTES_PER_PIXEL = 9


def max_inspect_pixels(image_format: Optional[str]) -> int:
    """Most pixels (after any reduced decode) an image of this Pillow format may have to be inspected."""
    return MAX_DECODE_BYTES // _DECODE_BYTES_PER_PIXEL.get(image_format, _DEFAULT_DECODE_BYTES_PER_PIXEL)


def _pillow_reads(feature: str) -> bool:
    """Whether this Pillow was built with `feature` (an unknown name, from an older Pillow, is False)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(features.check(feature))


#: Whether this Pillow decodes AVIF; when it does not, .avif files are reported as unsupported.
AVIF_SUPPORTED = _pillow_reads("avif")
_AVIF = {".avif"} if AVIF_SUPPORTED else set()
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", *_AVIF})
#: Extensions of photo formats the scan cannot decode: reported as skipped, not silently ignored.
UNSUPPORTED_IMAGE_EXTENSIONS = frozenset({".heic", ".heif", ".jxl", ".avif", ".svg", ".svgz"} - IMAGE_EXTENSIONS)
#: The Pillow formats the scan decodes, whatever a file's extension says (a .png may be a JPEG;
#: JPEG includes multi-picture MPO files).
#: Pillow's other plugins (EPS runs Ghostscript, PSD, ICO, TGA, ...) are never tried on dataset files.
SCAN_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", *(("AVIF",) if AVIF_SUPPORTED else ()))
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


def _full_scale_level(image: Image.Image) -> float:
    """The level of a 16-bit, integer or float image that shows as white (255) in 8 bits."""
    if image.mode.startswith("I;16"):
        return 65535.0
    high = float(image.getextrema()[1])
    if image.mode == "F":
        return max(high, 1e-12)
    return 65535.0 if high > 255 else 255.0


def to_rgb(image: Image.Image, *, full_scale: Optional[float] = None) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: 16-bit and float scaled, alpha composited on white.

    full_scale: for 16-bit, integer and float modes, the level shown as 255 (default:
    65535 for 16-bit, else the image's maximum for float, 65535 or 255 for integer).
    """
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        high = _full_scale_level(image) if full_scale is None else full_scale
        array = np.asarray(image, dtype=np.float64)
        scaled = np.clip(array / high * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_rgb(source, *, max_side: Optional[int] = None) -> Image.Image:
    """Open an image file or file object as EXIF-upright RGB, at most `max_side` pixels on its longest side.
    A path must be a regular file (open_regular)."""
    rgb = decode_rgb(source, draft_side=max_side)
    if max_side is not None:
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return rgb


def decode_rgb(source, *, draft_side: Optional[int] = None) -> Image.Image:
    """An image file or file object decoded as EXIF-upright RGB; a JPEG at the smallest scale (1/2 .. 1/8)
    still at least `draft_side` px both ways (None: full size). A path must be a regular file (open_regular)."""
    if isinstance(source, (str, os.PathLike)):
        with open_regular(source) as handle:
            return decode_rgb(handle, draft_side=draft_side)
    with Image.open(source) as image:
        if draft_side is not None:
            image.draft("RGB", (draft_side, draft_side))
        upright = ImageOps.exif_transpose(image)
        return to_rgb(upright)


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


#: EXIF orientation values (1-8) in words, as a reviewer reads them.
ORIENTATION_NAMES = {1: "upright", 2: "mirrored", 3: "rotated 180°", 4: "mirrored and rotated 180°",
                     5: "mirrored and rotated 90° right", 6: "rotated 90° right",
                     7: "mirrored and rotated 90° left", 8: "rotated 90° left"}


@dataclass(frozen=True)
class FileFacts:
    """What the file says about itself, read from its header without decoding the pixels: the format
    (e.g. "JPEG"), width and height in pixels as stored (before EXIF rotation), PIL mode and EXIF
    orientation (1-8, 1 = upright)."""

    format: str
    width: int
    height: int
    mode: str
    orientation: int

    def describe(self) -> str:
        """e.g. "JPEG · 4032 × 3024 px stored · rotated 90° right by EXIF"."""
        turned = "" if self.orientation == 1 else f" · {ORIENTATION_NAMES.get(self.orientation, 'odd orientation')} by EXIF"
        return f"{self.format} · {self.width} × {self.height} px stored · {self.mode}{turned}"


def read_file_facts(path) -> FileFacts:
    """FileFacts of the image at `path` (header only: fast on any size). Raises OSError or Pillow's
    errors for a file that is not an image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open_regular(path) as handle, Image.open(handle) as image:
            return FileFacts(image.format or "unknown", image.width, image.height, image.mode, _orientation(image))


def _averageable(image: Image.Image) -> Image.Image:
    """`image` in a mode whose values Image.reduce may average: palettes expanded, 1-bit as L, 16-bit as I."""
    if image.mode in ("P", "PA"):
        return image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    if image.mode == "1":
        return image.convert("L")
    if image.mode.startswith("I;16"):
        return image.convert("I")
    return image


def _analysis_images(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(rgb, luma) of a loaded image: rgb box-reduced to 1..2x ANALYSIS_SIZE, luma at most ANALYSIS_SIZE.

    The image is reduced before it is converted to RGB, so no full-size RGB copy is made.
    """
    full_scale = _full_scale_level(image) if image.mode in _HIGH_BIT_DEPTH_MODES else None
    factor = max(image.size) // ANALYSIS_SIZE
    if factor >= 2:
        image = _averageable(image).reduce(factor)
    rgb = to_rgb(image, full_scale=full_scale)
    luma = rgb.convert("L")
    if max(luma.size) > ANALYSIS_SIZE:
        luma.thumbnail((ANALYSIS_SIZE, ANALYSIS_SIZE), Image.Resampling.BILINEAR)
    return rgb, luma


def _describe_error(error: BaseException) -> str:
    if isinstance(error, UnidentifiedImageError):
        return f"not an image: the file's contents are not {', '.join(SCAN_FORMATS[:-1])} or {SCAN_FORMATS[-1]}"
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"image too large: {error}"
    text = str(error) or type(error).__name__
    if "truncated" in text.lower():
        return f"truncated image: {text}"
    return f"cannot decode: {text}"


def _too_large_to_inspect(width: int, height: int, image_format: Optional[str]) -> str:
    return (f"image too large to inspect: {width} x {height} pixels ({width * height / 1e6:.1f} million) "
            f"is more than the {max_inspect_pixels(image_format) / 1e6:.1f} million pixels the scan decodes "
            f"for a {image_format} image")


def inspect_image_bytes(data: bytes) -> ImageInfo:
    """Validate and measure one image given its file bytes. Never raises for bad data.

    Only SCAN_FORMATS are decoded; an image that would need more than
    MAX_DECODE_BYTES of memory is reported as too large, not decoded.

    The pHash is taken of the EXIF-upright analysis image, so re-encoded or
    resized copies hash alike: the file decoded at reduced size (JPEG at 1/2..1/8
    scale, others box-reduced to 64..127 px), as 8-bit luma shrunk to at most
    ANALYSIS_SIZE px, then imagehash's pHash steps (`phash_hex`). It is therefore
    not `imagehash.phash(Image.open(path))` of the full-size file: the two differ
    by a few bits on many photos (see docs/checks.md, "duplicate"). Stored pHashes
    are comparable with each other, not with pHashes computed some other way.
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
            with Image.open(io.BytesIO(data), formats=SCAN_FORMATS) as image:
                mode = image.mode
                width, height = image.size  # as stored; draft() shrinks image.size
                image.draft("RGB", (ANALYSIS_SIZE, ANALYSIS_SIZE))
                if image.size[0] * image.size[1] > max_inspect_pixels(image.format):
                    return ImageInfo(content_hash, error=_too_large_to_inspect(width, height, image.format))
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
