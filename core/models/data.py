"""Training data fed from memory: images decoded and resized once into a uint8 cache, then batched and augmented as tensors.

The decode-once cache lives in a folder of shards keyed by image content hash and
training size: `<cache_dir>/<size>px/<shard>.hashes.npy` (sha256 hex strings) and
`<shard>.pixels.npy` (uint8, shape (M, size, size, 3)). Each image is decoded once per
size, whatever dataset or run it belongs to; later runs read only the rows they need.
Images are resized so their shorter side is `size` and centre-cropped to a square.

Batches come straight from the in-memory tensor (on the GPU when it fits there,
else pinned host memory copied with non_blocking=True), so no JPEG is decoded
during training. Augmentation (random resized crop, horizontal flip, colour
jitter) runs on whole batches on the training device.
"""
from __future__ import annotations

import io
import logging
import math
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import WeightedRandomSampler

from core.files import CHANGED_SINCE_SCAN, ContentChanged, read_scanned
from core.imaging import decode_rgb
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Share of free GPU memory the image cache may take before it stays in pinned host memory instead.
GPU_CACHE_SHARE = 0.5
SAMPLERS = ("weighted", "shuffle", "sequential")


def decode_for_training(path: str | os.PathLike, size: int, *, root: Optional[str | os.PathLike] = None,
                        content_hash: Optional[str] = None) -> np.ndarray:
    """One image file as EXIF-upright RGB, shorter side resized to `size` and centre-cropped: uint8, shape
    (size, size, 3). root, content_hash: as the scan saw it (core.files.read_scanned; ContentChanged when
    the file is no longer the one the scan hashed)."""
    data = read_scanned(path, root=root, content_hash=content_hash)
    rgb = decode_rgb(io.BytesIO(data), draft_side=size)  # JPEG: decoded at the smallest scale still >= size
    square = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BILINEAR)
    return np.asarray(square, dtype=np.uint8)


@dataclass
class DecodedImages:
    """pixels: uint8 tensor, shape (N, size, size, 3), in the order asked for; rows of failed images are zero.
    failed: position -> why that image could not be decoded. from_cache: how many rows were already cached."""

    pixels: torch.Tensor
    failed: dict[int, str] = field(default_factory=dict)
    from_cache: int = 0


def _shard_paths(cache_dir: Path, size: int) -> list[tuple[Path, Path]]:
    """(hashes file, pixels file) of every complete shard for `size`; a shard is complete once its hashes file exists."""
    folder = cache_dir / f"{size}px"
    if not folder.is_dir():
        return []
    shards = []
    for hashes_file in sorted(folder.glob("*.hashes.npy")):
        pixels_file = hashes_file.with_name(hashes_file.name.replace(".hashes.npy", ".pixels.npy"))
        if pixels_file.is_file():
            shards.append((hashes_file, pixels_file))
    return shards


def _read_cached(cache_dir: Path, size: int, content_hashes: Sequence[str], out: np.ndarray) -> np.ndarray:
    """Fill rows of `out` whose content hash is cached; returns a bool mask (N,) of the rows filled."""
    wanted: dict[str, list[int]] = {}
    for position, content_hash in enumerate(content_hashes):
        wanted.setdefault(content_hash, []).append(position)
    filled = np.zeros(len(content_hashes), dtype=bool)
    for hashes_file, pixels_file in _shard_paths(cache_dir, size):
        if not wanted:
            break
        shard_hashes = np.load(hashes_file, allow_pickle=False)
        rows, positions = [], []
        for row, content_hash in enumerate(shard_hashes.tolist()):
            for position in wanted.pop(content_hash, ()):
                rows.append(row)
                positions.append(position)
        if rows:
            shard_pixels = np.load(pixels_file, mmap_mode="r", allow_pickle=False)
            out[positions] = shard_pixels[rows]
            filled[positions] = True
    return filled


def _write_shard(cache_dir: Path, size: int, content_hashes: list[str], pixels: np.ndarray) -> None:
    """Add a shard; written under temporary names and renamed, hashes last, so readers never see half a shard."""
    folder = cache_dir / f"{size}px"
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    final_pixels, final_hashes = folder / f"{name}.pixels.npy", folder / f"{name}.hashes.npy"
    temporary_pixels, temporary_hashes = folder / f".{name}.pixels.tmp", folder / f".{name}.hashes.tmp"
    with open(temporary_pixels, "wb") as handle:
        np.save(handle, pixels, allow_pickle=False)
    with open(temporary_hashes, "wb") as handle:
        np.save(handle, np.asarray(content_hashes, dtype="U64"), allow_pickle=False)
    os.replace(temporary_pixels, final_pixels)
    os.replace(temporary_hashes, final_hashes)


def _decode_one(root: Path, path: str, content_hash: str, size: int) -> tuple[Optional[np.ndarray], Optional[str]]:
    try:
        return decode_for_training(root / path, size, root=root, content_hash=content_hash), None
    except ContentChanged:
        return None, CHANGED_SINCE_SCAN
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        # Pillow's plugins raise any of these on malformed files.
        return None, f"{type(error).__name__}: {error}"


def load_images(
    root: str | os.PathLike,
    paths: Sequence[str],
    content_hashes: Sequence[str],
    *,
    size: int,
    cache_dir: str | os.PathLike,
    workers: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
) -> DecodedImages:
    """Pixels of images `paths` (relative to `root`) at `size`, decoding only those not in the cache yet.

    content_hashes: the sha256 of each file (from the scan), the cache key. A file that no longer hashes
    to it, or that resolves outside `root`, fails with its reason (CHANGED_SINCE_SCAN for the first), so a
    picture swapped in after the scan is never trained on or cached under the old one's hash.
    Newly decoded images are added to the cache as one shard. Decoding runs in
    `workers` threads (default: CPU count); Pillow releases the GIL while decoding.
    """
    if len(paths) != len(content_hashes):
        raise ValueError("paths and content_hashes must have the same length")
    report = progress or (lambda fraction, message: None)
    cache_path = Path(cache_dir)
    pixels = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    filled = _read_cached(cache_path, size, content_hashes, pixels)
    missing = np.flatnonzero(~filled)
    failed: dict[int, str] = {}
    decoded_hashes: list[str] = []
    decoded_positions: list[int] = []
    if missing.size:
        root_path = Path(root)
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            results = pool.map(lambda p: _decode_one(root_path, paths[p], content_hashes[p], size), missing)
            for done, (position, (array, error)) in enumerate(zip(missing, results), start=1):
                if error is not None:
                    failed[int(position)] = error
                else:
                    pixels[position] = array
                    decoded_positions.append(int(position))
                    decoded_hashes.append(content_hashes[position])
                if done % 64 == 0 or done == missing.size:
                    report(done / missing.size, f"decoding images {done}/{missing.size}")
    if decoded_positions:
        unique = dict(zip(decoded_hashes, decoded_positions))  # duplicates of one file cached once
        _write_shard(cache_path, size, list(unique), pixels[list(unique.values())])
    log.info("images at %d px: %d from cache, %d decoded, %d failed", size, int(filled.sum()),
             len(decoded_positions), len(failed))
    return DecodedImages(torch.from_numpy(pixels), failed, int(filled.sum()))


# --- placement on the training device -------------------------------------------------------------


def place_pixels(pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Where batches are gathered from: the whole cache on the GPU when it fits, else pinned host memory.

    On CPU, or when already placed, the tensor is returned as is.
    """
    if device.type != "cuda" or pixels.device.type == "cuda" or pixels.is_pinned():
        return pixels
    free_bytes, _ = torch.cuda.mem_get_info(device)
    if pixels.numel() * pixels.element_size() < GPU_CACHE_SHARE * free_bytes:
        return pixels.to(device)
    return pixels.pin_memory()


_CONSTANTS: dict[tuple[str, torch.device], torch.Tensor] = {}


def _constant(name: str, values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """A small (1, 3, 1, 1) constant, created once per device (a per-batch copy to the GPU would stall it)."""
    key = (name, device)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return _CONSTANTS[key]


def _normalise(images: torch.Tensor) -> torch.Tensor:
    return (images - _constant("mean", IMAGENET_MEAN, images.device)) / _constant("std", IMAGENET_STD, images.device)


def to_model_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> normalised float32 (B, 3, H, W) with channels-last strides, which convolutions prefer
    (cuDNN on the GPU; oneDNN on the CPU, where MobileNetV2 trains two to three times faster so)."""
    return _normalise(batch.permute(0, 3, 1, 2).float().div_(255.0))


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a small CPU tensor to `device` without making the host wait for the GPU (pinned, non_blocking)."""
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


@dataclass(frozen=True)
class Augmentation:
    """Random resized crop (area share `scale`, aspect `ratio`), horizontal flip and colour jitter (+-`jitter`)."""

    scale: tuple[float, float] = (0.6, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter: float = 0.2


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(count, generator=generator) * (high - low) + low


def _augmentation_parameters(count: int, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Per-image parameters drawn on the CPU, shape (B, 9): the 2x3 affine crop-and-flip matrix, then the
    brightness, contrast and saturation factors."""
    area = _uniform(count, *augmentation.scale, generator)
    log_ratio = _uniform(count, math.log(augmentation.ratio[0]), math.log(augmentation.ratio[1]), generator)
    crop_w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
    crop_h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    centre_x = (torch.rand(count, generator=generator) * 2 - 1) * (1 - crop_w)
    centre_y = (torch.rand(count, generator=generator) * 2 - 1) * (1 - crop_h)
    flip = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0) if augmentation.flip else 1.0
    zeros = torch.zeros(count)
    jitter = [_uniform(count, 1 - augmentation.jitter, 1 + augmentation.jitter, generator) for _ in range(3)]
    return torch.stack([crop_w * flip, zeros, centre_x, zeros, crop_h, centre_y, *jitter], dim=1)


def augment(images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Augment a float batch in [0, 1], shape (B, 3, H, W), on its own device; returns the same shape.

    Random parameters are drawn on the CPU from `generator` (so a seed gives the
    same augmentation on any device) and copied in one non-blocking transfer;
    crop and flip are one affine resampling.
    """
    count, _, height, width = images.shape
    parameters = _to_device(_augmentation_parameters(count, augmentation, generator), images.device)
    grid = F.affine_grid(parameters[:, :6].view(count, 2, 3), [count, 3, height, width], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if augmentation.jitter > 0:
        brightness, contrast, saturation = (parameters[:, i].view(count, 1, 1, 1) for i in (6, 7, 8))
        luma_weights = _constant("luma", (0.299, 0.587, 0.114), images.device)
        out = out * brightness
        mean_luma = (out * luma_weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        out = (out - mean_luma) * contrast + mean_luma
        luma = (out * luma_weights).sum(1, keepdim=True)
        out = (luma + (out - luma) * saturation).clamp_(0.0, 1.0)
    return out


# --- batches ----------------------------------------------------------------------------------------


def balanced_sample_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights 1 / (count of its class), shape (N,): each class is drawn equally often."""
    counts = np.bincount(labels)
    return 1.0 / counts[labels]


class MemoryBatches:
    """Batches of (normalised images (B, 3, H, W), labels (B,)) on `device`, gathered from a uint8 pixel cache.

    pixels: uint8 (N_all, H, W, 3), placed by `place_pixels`; labels: int64 (N_all,);
    indices: the rows this loader uses. sampler: 'weighted' (with replacement,
    every class equally likely: WeightedRandomSampler), 'shuffle' or 'sequential'.
    Images have channels-last strides.

    Fixed shapes, so that cuDNN tunes its kernels once: a training loader (`training=True`)
    with more rows than one batch fills its last batch by wrapping around to the start of the
    epoch's order, so every batch has batch_size images and every row is seen each epoch (a
    few twice; the order, and so which, changes every epoch). With `pad`, the last batch of
    images is padded to batch_size with copies of its last image while its labels stay the
    real ones: a consumer keeps the first len(labels) outputs (`evaluate` does).
    """

    def __init__(self, pixels: torch.Tensor, labels: np.ndarray, indices: np.ndarray, *, batch_size: int,
                 device: torch.device, sampler: str = "sequential", augmentation: Optional[Augmentation] = None,
                 training: bool = False, seed: int = 0, pad: bool = False):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; samplers are: {', '.join(SAMPLERS)}")
        self.pixels = pixels
        self.labels = torch.tensor(np.asarray(labels), dtype=torch.int64).to(pixels.device)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.weights = balanced_sample_weights(np.asarray(labels)[self.indices]) if sampler == "weighted" else None
        self.batch_size = batch_size
        self.device = device
        self.sampler = sampler
        self.augmentation = augmentation
        self.training = training
        self.seed = seed
        self.pad = pad

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def _wraps(self) -> bool:
        return self.training and len(self.indices) > self.batch_size

    def _order(self, generator: torch.Generator) -> torch.Tensor:
        """The epoch's rows in order; a wrapping training loader's run on to a whole number of batches."""
        count = len(self.indices)
        drawn = len(self) * self.batch_size if self._wraps() else count
        if self.sampler == "weighted":
            order = torch.as_tensor(list(WeightedRandomSampler(
                self.weights.tolist(), num_samples=drawn, replacement=True, generator=generator)))
        else:
            order = torch.randperm(count, generator=generator) if self.sampler == "shuffle" else torch.arange(count)
            order = torch.cat([order, order[:drawn - count]])
        return torch.as_tensor(self.indices)[order]

    def _batch_rows(self, generator: torch.Generator) -> list[torch.Tensor]:
        """The epoch's rows split into batches, on the cache's device (one copy per epoch)."""
        order = self._order(generator)
        if self.pixels.device.type == "cuda":
            order = _to_device(order, self.pixels.device)
        return list(order.split(self.batch_size))

    def _gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (padded to batch_size with `pad`) and the real rows' labels, on the training device."""
        labels = self.labels.index_select(0, rows)
        if self.pad and len(rows) < self.batch_size:
            rows = torch.cat([rows, rows[-1:].expand(self.batch_size - len(rows))])
        images = self.pixels.index_select(0, rows)
        if images.device != self.device:  # cache in (pinned) host memory, training on the GPU
            images, labels = _to_device(images, self.device), _to_device(labels, self.device)
        return images, labels

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch; order and augmentation depend only on (seed, epoch), so a resumed run repeats them."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        for rows in self._batch_rows(generator):
            images, labels = self._gather(rows)
            if self.augmentation is None:
                yield to_model_input(images), labels
                continue
            floats = images.permute(0, 3, 1, 2).float().div_(255.0)
            augmented = _normalise(augment(floats, self.augmentation, generator))
            yield augmented.contiguous(memory_format=torch.channels_last), labels
