"""What a network, or the weight-free pixels features, sees of a photo: the object crop or the whole photo.

A network sees one of two views of a photo (`VIEWS`): "crop", the object's bounding square (for an item on a
plain background: the background colour comes from the image border, the crop is the bounding square of the
pixels that differ from it), or "whole", the whole photo padded to a square with its border colour (for items
on cluttered tables, floors and beds, where no crop can be trusted). The weight-free "pixels" features (the
object's grey difference from the background, its HOG and colours) always use the crop.
"""
from __future__ import annotations

import io
import logging
import math
import os
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from core.files import read_scanned
from core.imaging import decode_rgb, open_rgb

log = logging.getLogger(__name__)
#: Side of the grey "difference from background" image the weight-free `pixels` features are made of.
PIXELS_SIDE = 28
#: Colour part of the pixels features: background RGB and mean object RGB, in [0, 1].
COLOUR_LENGTH = 6
#: HOG of the pixels features: cell side in pixels and orientation bins (unsigned, 0..180 degrees).
HOG_CELL = 4
HOG_BINS = 9
#: A border whose pixels differ from their median colour by more than this (0..255, median over the
#: border) is not a plain background: the whole image is used instead of an object crop.
BORDER_SPREAD_MAX = 24.0
#: A pixel belongs to the object when it differs from the background by more than
#: max(OBJECT_MIN_DIFFERENCE, OBJECT_RELATIVE_DIFFERENCE * the largest difference).
OBJECT_MIN_DIFFERENCE = 12.0
OBJECT_RELATIVE_DIFFERENCE = 0.15
#: The crop is the object's bounding square enlarged by this share.
CROP_MARGIN = 0.1
#: Images are decoded at this many times the crop side before cropping (the object is part of the image).
DECODE_FACTOR = 2
#: Errors Pillow raises on a file it cannot decode.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
#: Version of the preprocessing, part of every cache key: bump it when crops or features change.
PREPROCESSING_VERSION = "crop1"
#: The views a network can embed, with the version of each one's preprocessing (part of the cache key).
VIEWS = {"crop": PREPROCESSING_VERSION, "whole": "whole1"}
DEFAULT_VIEW = "crop"


def hog_length(side: int) -> int:
    cells = side // HOG_CELL
    return (cells - 1) * (cells - 1) * 4 * HOG_BINS


def object_box(pixels: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """The object's crop square and the background colour of an RGB image, uint8 (H, W, 3).

    Returns ((left, top, right, bottom) in pixels, possibly reaching past the image, and the
    background colour, float (3,)). Without a plain background, or without an object, the
    square is the image's bounding square.
    """
    height, width = pixels.shape[:2]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.float32)
    background = np.median(border, axis=0)
    spread = float(np.median(np.abs(border - background).max(axis=1)))
    top, bottom, left, right = 0, height, 0, width
    if spread <= BORDER_SPREAD_MAX:  # a cluttered border keeps the whole image: no object to find
        inside = _object_pixels(pixels, background)
        rows, columns = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        if len(rows):
            top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    side = max(bottom - top, right - left) * (1 + CROP_MARGIN)
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    return (centre_x - side / 2, centre_y - side / 2, centre_x + side / 2, centre_y + side / 2), background


def _object_pixels(pixels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """bool (H, W): the pixels of uint8 (H, W, 3) farther from `background` (float (3,)) than the object
    threshold, the largest channel difference of each (the channel maximum taken pairwise: a reduction
    over numpy's last axis of length 3 costs five times as much)."""
    distance = np.abs(pixels.astype(np.float32) - background)
    difference = np.maximum(np.maximum(distance[..., 0], distance[..., 1]), distance[..., 2])
    return difference > max(OBJECT_MIN_DIFFERENCE, OBJECT_RELATIVE_DIFFERENCE * float(difference.max()))


def whole_box(pixels: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """The bounding square of a whole RGB image, uint8 (H, W, 3), centred on it, and the median colour of
    its border, float (3,): the same shape of answer as object_box."""
    height, width = pixels.shape[:2]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.float32)
    side = max(height, width)
    return ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2), np.median(border, axis=0)


def crop_to_object(image: Image.Image, side: int, *, view: str = DEFAULT_VIEW) -> tuple[Image.Image, np.ndarray]:
    """The object crop ("crop") or the whole image ("whole") of an RGB image as a side x side RGB image,
    padded with the background colour where the square reaches past the image, and that colour, float (3,)."""
    box_of = whole_box if view == "whole" else object_box
    (left, top, right, bottom), background = box_of(np.asarray(image))
    x0, y0 = math.floor(left), math.floor(top)
    size = max(1, math.ceil(right) - x0), max(1, math.ceil(bottom) - y0)
    canvas = Image.new("RGB", size, tuple(int(round(c)) for c in background))
    canvas.paste(image, (-x0, -y0))
    box = (left - x0, top - y0, right - x0, bottom - y0)
    return canvas.resize((side, side), Image.Resampling.BILINEAR, box=box), background


def load_object(path: str | os.PathLike, side: int, *, view: str = DEFAULT_VIEW, root: Optional[str] = None,
                content_hash: Optional[str] = None) -> tuple[Image.Image, np.ndarray]:
    """The `view` ("crop" or "whole") of the image file at `path`, side x side RGB, and its background colour.
    root, content_hash: as the scan saw the file (core.files.read_scanned: an OSError when it no longer is)."""
    data = read_scanned(path, root=root, content_hash=content_hash)
    return crop_to_object(open_rgb(io.BytesIO(data), max_side=decode_side(side, view)), side, view=view)


def decode_side(side: int, view: str) -> int:
    """The longest side, in pixels, an image is decoded at for the `view` at `side` px (a crop is part of it)."""
    return side if view == "whole" else side * DECODE_FACTOR


def load_views(path: str | os.PathLike, requests: Sequence[tuple[int, str]], *, root: Optional[str] = None,
               content_hash: Optional[str] = None) -> list[Image.Image]:
    """The (side, view) `requests` of one image file, each exactly as `load_object` makes it, from one read
    and as few decodes as the file allows: requests whose JPEG draft scale comes out the same share one
    decode (a PNG always does), so the pixels never differ from decoding once per view."""
    data = read_scanned(path, root=root, content_hash=content_hash)
    groups: dict[tuple, list[int]] = {}
    for position, (side, view) in enumerate(requests):
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (decode_side(side, view), decode_side(side, view)))
            groups.setdefault((image.mode, image.size), []).append(position)
    crops: list[Optional[Image.Image]] = [None] * len(requests)
    for positions in groups.values():
        first_side, first_view = requests[positions[0]]
        decoded = decode_rgb(io.BytesIO(data), draft_side=decode_side(first_side, first_view))
        for position in positions:
            side, view = requests[position]
            reduced = decoded.copy()
            reduced.thumbnail((decode_side(side, view), decode_side(side, view)), Image.Resampling.BILINEAR)
            crops[position] = crop_to_object(reduced, side, view=view)[0]
    return crops


def difference_image(crop: Image.Image, background: np.ndarray, side: int) -> np.ndarray:
    """How far each pixel of `crop` is from the background, max over channels, resized to side x side
    and scaled so the largest is 1: float32 (side, side). Colour-free: only the object's shape and shading."""
    difference = np.abs(np.asarray(crop, dtype=np.float32) - background).max(axis=2)
    small = Image.fromarray(np.clip(difference, 0, 255).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
    values = np.asarray(small, dtype=np.float32)
    return values / max(float(values.max()), 1.0)


def colour_summary(crop: Image.Image, background: np.ndarray) -> np.ndarray:
    """The background colour and the object's mean colour (the whole crop's without an object), RGB in
    [0, 1]: float32 (COLOUR_LENGTH,)."""
    pixels = np.asarray(crop, dtype=np.float32).reshape(-1, 3)
    difference = np.abs(pixels - background).max(axis=1)
    threshold = max(OBJECT_MIN_DIFFERENCE, OBJECT_RELATIVE_DIFFERENCE * float(difference.max()))
    inside = difference > threshold
    colour = pixels[inside].mean(axis=0) if inside.any() else pixels.mean(axis=0)
    return (np.concatenate([background, colour]) / 255.0).astype(np.float32)


def hog(images: np.ndarray) -> np.ndarray:
    """Histograms of oriented gradients of grey images, float (N, H, W) -> float32 (N, F).

    HOG_BINS unsigned orientation bins per HOG_CELL x HOG_CELL cell (magnitude-weighted, linear
    between bins), 2x2-cell blocks L2-Hys normalised (clipped at 0.2), F = hog_length(H).
    """
    gradient_y, gradient_x = np.gradient(images.astype(np.float32), axis=(1, 2))
    magnitude = np.hypot(gradient_x, gradient_y)
    position = (np.rad2deg(np.arctan2(gradient_y, gradient_x)) % 180.0) / (180.0 / HOG_BINS)
    lower = np.floor(position).astype(np.int64) % HOG_BINS
    upper = (lower + 1) % HOG_BINS
    weight = position - np.floor(position)
    count, height, width = images.shape
    cells_y, cells_x = height // HOG_CELL, width // HOG_CELL
    histogram = np.zeros((count, cells_y, cells_x, HOG_BINS), dtype=np.float32)
    for bin_index in range(HOG_BINS):
        votes = magnitude * ((lower == bin_index) * (1 - weight) + (upper == bin_index) * weight)
        votes = votes[:, :cells_y * HOG_CELL, :cells_x * HOG_CELL]
        histogram[..., bin_index] = votes.reshape(count, cells_y, HOG_CELL, cells_x, HOG_CELL).sum(axis=(2, 4))
    blocks = np.concatenate(
        [histogram[:, :-1, :-1], histogram[:, 1:, :-1], histogram[:, :-1, 1:], histogram[:, 1:, 1:]], axis=-1
    )
    for _ in range(2):  # L2 normalise, clip, normalise again (L2-Hys)
        blocks = blocks / np.sqrt(np.square(blocks).sum(axis=-1, keepdims=True) + 1e-6)
        blocks = np.minimum(blocks, 0.2)
    blocks = blocks / np.sqrt(np.square(blocks).sum(axis=-1, keepdims=True) + 1e-6)
    return blocks.reshape(count, -1).astype(np.float32)


class ScannedFiles(Dataset):
    """Image files as the scan saw them: absolute `paths`, their dataset folder `root` and the scan's
    `content_hashes` (parallel to paths; None: not checked). Subclasses say what each file becomes."""

    def __init__(self, paths: Sequence[str | os.PathLike], *, root: Optional[str] = None,
                 content_hashes: Optional[Sequence[str]] = None) -> None:
        self.paths = list(paths)
        self.root = root
        self.content_hashes = list(content_hashes) if content_hashes is not None else [None] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


class ObjectCrops(ScannedFiles):
    """Image files as network input: the object crop or the whole image (`view`) as uint8 (S, S, 3)
    (a quarter of the bytes of floats to pass between processes and copy to a GPU;
    core.models.data.to_model_input normalises a batch of them), and whether the file decoded
    (zeros when it did not)."""

    def __init__(self, paths: Sequence[str | os.PathLike], side: int, view: str = DEFAULT_VIEW, *,
                 root: Optional[str] = None, content_hashes: Optional[Sequence[str]] = None) -> None:
        super().__init__(paths, root=root, content_hashes=content_hashes)
        self.side = side
        self.view = view

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        pixels, ok = crop_pixels(self.paths[index], self.side, self.view, root=self.root,
                                 content_hash=self.content_hashes[index])
        return torch.from_numpy(pixels), ok


def crop_pixels(path: str | os.PathLike, side: int, view: str, *, root: Optional[str] = None,
                content_hash: Optional[str] = None) -> tuple[np.ndarray, bool]:
    """The `view` of the image file at `path` as uint8 (side, side, 3), and whether it read (zeros if not:
    undecodable, or no longer as the scan saw it; see load_object)."""
    try:
        crop, _ = load_object(path, side, view=view, root=root, content_hash=content_hash)
    except DECODE_ERRORS as error:
        log.warning("cannot decode %s for embedding: %s", path, error)
        return np.zeros((side, side, 3), dtype=np.uint8), False
    return np.array(crop, dtype=np.uint8), True


class DifferenceImages(ScannedFiles):
    """Image files as PIXELS_SIDE x PIXELS_SIDE difference-from-background images, float32, their
    colour summary and whether the file decoded."""

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, bool]:
        return difference_and_colour(self.paths[index], root=self.root, content_hash=self.content_hashes[index])


def difference_and_colour(path: str | os.PathLike, *, root: Optional[str] = None,
                          content_hash: Optional[str] = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """The file's difference image, float32 (PIXELS_SIDE, PIXELS_SIDE), its colour summary, float32
    (COLOUR_LENGTH,), and whether it read (zeros if not; see load_object)."""
    try:
        crop, background = load_object(path, 2 * PIXELS_SIDE, root=root, content_hash=content_hash)
    except DECODE_ERRORS as error:
        log.warning("cannot decode %s for embedding: %s", path, error)
        return np.zeros((PIXELS_SIDE, PIXELS_SIDE), np.float32), np.zeros(COLOUR_LENGTH, np.float32), False
    return difference_image(crop, background, PIXELS_SIDE), colour_summary(crop, background), True


def pixels_vectors(images: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Weight-free features of difference images, float32 (B, PIXELS_SIDE, PIXELS_SIDE), and their colour
    summaries (B, COLOUR_LENGTH): float32 (B, BACKBONES["pixels"].dim), pixels then HOG then colours."""
    return np.hstack([images.reshape(len(images), -1), hog(images), colours]).astype(np.float32, copy=False)


def _scanned_rows(batch: dict[str, np.ndarray]) -> list[tuple[str, Optional[str]]]:
    """(path, content hash or None) of each row of a Ray batch; "" in content_hash means not checked."""
    hashes = batch.get("content_hash", [""] * len(batch["path"]))
    return [(str(path), str(content_hash) or None) for path, content_hash in zip(batch["path"], hashes)]


def crop_batch(batch: dict[str, np.ndarray], side: int, view: str, root: Optional[str] = None) -> dict[str, np.ndarray]:
    """Ray Data batch function: columns index, path and content_hash ("": not checked) -> index, pixels uint8
    (B, side, side, 3) and ok; root: the dataset folder every path must stay inside (None: not checked)."""
    crops = [crop_pixels(path, side, view, root=root, content_hash=content_hash)
             for path, content_hash in _scanned_rows(batch)]
    return {"index": batch["index"], "pixels": np.stack([pixels for pixels, _ in crops]),
            "ok": np.array([ok for _, ok in crops], dtype=bool)}


def pixels_batch(batch: dict[str, np.ndarray], root: Optional[str] = None) -> dict[str, np.ndarray]:
    """Ray Data batch function: columns index, path and content_hash (as crop_batch) -> index, vector
    float32 (B, D) of the "pixels" backbone, and ok."""
    images, colours, ok = zip(*(difference_and_colour(path, root=root, content_hash=content_hash)
                                for path, content_hash in _scanned_rows(batch)))
    return {"index": batch["index"], "vector": pixels_vectors(np.stack(images), np.stack(colours)),
            "ok": np.array(ok, dtype=bool)}
