"""Small JPEG renderings of dataset images for the browser, cached per file version.

Only the images on screen are decoded (JPEG draft mode makes a 160 px
thumbnail of a large photo cheap), and each rendering is cached under
(path, mtime, size, content hash), so paging back and forth or rerunning decodes nothing twice.
Files are read as the scan saw them (core.files.read_scanned): a picture put in a file's place
since the scan shows as a placeholder that says so, never as the listing's photo.
Thumbnails are square (the photo whole, centred on a light band), so tiles of photos
of any shape line up in rows. An image that cannot be decoded gets a grey placeholder
that says why.
"""
from __future__ import annotations

import io
import logging
import textwrap
from typing import Optional

import streamlit as st
from PIL import Image, ImageDraw, ImageFont

from core.files import CHANGED_SINCE_SCAN, ContentChanged, FileRefused, read_scanned
from core.imaging import open_rgb

log = logging.getLogger(__name__)

#: Longest side of a grid thumbnail, in pixels.
THUMBNAIL_SIDE = 160
#: Longest side of the large view, in pixels.
LARGE_SIDE = 960
JPEG_QUALITY = 85
# What Pillow's plugins raise on files that are missing, truncated or malformed.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, IndexError,
                  TypeError, KeyError, ZeroDivisionError)
_PLACEHOLDER_BACKGROUND = (225, 225, 228)
#: What fills the bands beside (or above and below) a photo that is not square: the app's light grey.
LETTERBOX_FILL = (240, 242, 246)
_PLACEHOLDER_INK = (90, 90, 96)


def encode_jpeg(image: Image.Image, *, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def placeholder_jpeg(text: str, *, side: int = THUMBNAIL_SIDE) -> bytes:
    """A side x side grey JPEG with `text` wrapped on it (e.g. why an image cannot be shown)."""
    image = Image.new("RGB", (side, side), _PLACEHOLDER_BACKGROUND)
    draw = ImageDraw.Draw(image)
    font_size = max(10, side // 12)
    font = ImageFont.load_default(size=font_size)
    lines = textwrap.wrap(text, width=max(8, int(side / (font_size * 0.6))))[:6]
    top = (side - len(lines) * (font_size + 4)) // 2
    for number, line in enumerate(lines):
        draw.text((side // 2, top + number * (font_size + 4)), line, fill=_PLACEHOLDER_INK, font=font, anchor="ma")
    return encode_jpeg(image)


def letterbox(image: Image.Image) -> Image.Image:
    """`image` (RGB) centred on a square as wide as its longest side, the bands filled with LETTERBOX_FILL:
    nothing of the photo is cut off, and every thumbnail has the same shape."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new("RGB", (side, side), LETTERBOX_FILL)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def render_jpeg(path: str, *, max_side: int, square: bool = False, root: Optional[str] = None,
                content_hash: Optional[str] = None) -> tuple[bytes, Optional[str]]:
    """(JPEG bytes of the image at `path`, upright and at most `max_side` px, None), or (placeholder, problem).

    square: letterbox the image to a square of its longest side (placeholders are square already).
    root, content_hash: the dataset folder and the scan's sha256 of the file (None: not checked).
    Never raises for a missing, changed or undecodable file: the problem is returned instead.
    """
    try:
        image = open_rgb(io.BytesIO(read_scanned(path, root=root, content_hash=content_hash)), max_side=max_side)
    except FileNotFoundError:
        problem = "file not found (moved or deleted since the scan)"
    except ContentChanged:
        problem = f"a different picture: the file {CHANGED_SINCE_SCAN}"
    except FileRefused as refused:
        problem = f"not read: {refused}"
    except _DECODE_ERRORS as error:
        problem = f"cannot decode: {error}"
    else:
        return encode_jpeg(letterbox(image) if square else image), None
    log.info("cannot render %s: %s", path, problem)
    return placeholder_jpeg(problem, side=min(max_side, 2 * THUMBNAIL_SIDE)), problem


def scanned_hash(row) -> Optional[str]:
    """The scan's content hash of a sample row (a mapping, a Series or a named tuple); None when it has none."""
    value = row.get("content_hash") if hasattr(row, "get") else getattr(row, "content_hash", None)
    return value if isinstance(value, str) and value else None


@st.cache_data(max_entries=2000, show_spinner=False)
def thumbnail(path: str, mtime_ns: int, file_size: int, *, root: Optional[str] = None,
              content_hash: Optional[str] = None, max_side: int = THUMBNAIL_SIDE) -> bytes:
    """JPEG bytes of a square thumbnail (letterboxed, see `letterbox`) of the image at absolute `path`, at most
    `max_side` px a side (placeholder if it cannot be shown; see render_jpeg for root and content_hash).

    mtime_ns, file_size and content_hash identify the file version: a rescanned file is rendered again.
    """
    return render_jpeg(path, max_side=max_side, square=True, root=root, content_hash=content_hash)[0]


@st.cache_data(max_entries=32, show_spinner=False)
def large_image(path: str, mtime_ns: int, file_size: int, *, root: Optional[str] = None,
                content_hash: Optional[str] = None, max_side: int = LARGE_SIDE) -> tuple[bytes, Optional[str]]:
    """(JPEG bytes, problem or None) of the image at absolute `path` for the large view; see render_jpeg."""
    return render_jpeg(path, max_side=max_side, root=root, content_hash=content_hash)


@st.cache_data(max_entries=64, show_spinner=False)
def unreadable_placeholder(reason: str, *, side: int = THUMBNAIL_SIDE) -> bytes:
    """The grid tile of an image the scan found unreadable: a placeholder with the first words of the reason."""
    return placeholder_jpeg(f"unreadable: {reason}", side=side)
