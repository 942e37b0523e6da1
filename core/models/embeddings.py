"""Image embeddings: frozen ImageNet backbones (or the weight-free pixels features) over a view of each photo.

`BACKBONES` maps a name to a `Backbone`; `embed_images` turns image files into an (N, D) float32 array and
`embed_cached` does the same through an `EmbeddingStore`, so a re-audit recomputes nothing. With executor "ray"
both run as a Ray Data pipeline (decoding tasks, then actors holding the network, on GPUs when the cluster has
them; core.executors), with the same results. Pretrained weights are only ever read from torch's hub cache: a
missing file raises `MissingWeightsError`, never a download and never a silently random network.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.executors import RayStage, cluster_cpus, cluster_gpus, map_batches_on_ray, resolve_executor
from core.models.runtime import Runner, grid_pool, open_runner
from core.models.store import EmbeddingStore
from core.models.views import (COLOUR_LENGTH, DEFAULT_VIEW, PIXELS_SIDE, PREPROCESSING_VERSION, VIEWS, DifferenceImages,
                               ObjectCrops, ScannedFiles, crop_batch, hog_length, pixels_batch, pixels_vectors)
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "mobilenet_v2"
#: Side, in pixels, of the object crop a network sees (the crop member; the photo member sees the whole
#: photo at its own size, core.audit.evidence.gather.MislabelOptions.photo_size).
DEFAULT_IMAGE_SIZE = 112
DEFAULT_BATCH_SIZE = 64
#: Batch size of network embeddings on a GPU: large enough to keep it busy; every batch has it (the last is padded).
CUDA_BATCH_SIZE = 256
#: New vectors are embedded and cached this many images at a time (and cached ones read so many at a
#: time): a chunk of MobileNetV2 vectors is 16,384 x 9 KB = 150 MB, and starting a chunk (the network and
#: the decoding processes) costs about a second, under 1% of embedding 16,384 photos on a CPU.
CACHE_CHUNK_IMAGES = 16384
#: Most DataLoader worker processes decoding for a GPU, and batches each keeps ready.
CUDA_MAX_WORKERS = 16
CUDA_PREFETCH_BATCHES = 4


class MissingWeightsError(RuntimeError):
    """A backbone's pretrained weights file is not installed; the message says how to install it."""


class UnreadableImageError(RuntimeError):
    """Image files that could not be decoded for embedding (they changed since the scan)."""


@dataclass(frozen=True)
class Backbone:
    """A named feature extractor.

    arch: torchvision model name, None for "pixels" (no network); weights: name of the torchvision
    weights enum member ("IMAGENET1K_V1"), None when no weights file is needed; pools: the
    (block index, grid side, channels) of each `features` block whose output is average-pooled to a
    grid x grid map and concatenated; classifier: the core.audit.oof classifier that suits these features.
    """

    name: str
    arch: Optional[str]
    weights: Optional[str]
    pools: tuple[tuple[int, int, int], ...]
    classifier: str
    description: str = ""

    @property
    def pretrained(self) -> bool:
        return self.weights is not None

    @property
    def dim(self) -> int:
        """Length of one embedding."""
        if self.arch is None:
            return PIXELS_SIDE * PIXELS_SIDE + hog_length(PIXELS_SIDE) + COLOUR_LENGTH
        return sum(channels * grid * grid for _, grid, channels in self.pools)


BACKBONES: dict[str, Backbone] = {
    backbone.name: backbone
    for backbone in (
        # Blocks 13 and 16 keep a 2x2 layout (sleeves, collars, heels are where classes differ); the last
        # block is pooled to one vector. Measured in docs/mislabel.md.
        Backbone("mobilenet_v2", "mobilenet_v2", "IMAGENET1K_V1", ((13, 2, 96), (16, 2, 160), (18, 1, 1280)),
                 "logreg", "MobileNetV2, ImageNet weights: blocks 13 and 16 on a 2x2 grid, the last block pooled"),
        Backbone("resnet18", "resnet18", "IMAGENET1K_V1", ((7, 1, 512),), "logreg", "ResNet-18, ImageNet weights"),
        Backbone("resnet50", "resnet50", "IMAGENET1K_V2", ((7, 1, 2048),), "logreg", "ResNet-50, ImageNet weights"),
        Backbone("efficientnet_b0", "efficientnet_b0", "IMAGENET1K_V1", ((8, 1, 1280),), "logreg",
                 "EfficientNet-B0, ImageNet weights"),
        Backbone("pixels", None, None, (), "kernel_logreg",
                 f"no network, no weights: the object's {PIXELS_SIDE}x{PIXELS_SIDE} grey difference from the "
                 "background, its histograms of oriented gradients (HOG), the object's and background's colour"),
    )
}


def get_backbone(name: str) -> Backbone:
    """The backbone called `name`; ValueError listing the valid names otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; backbones are: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def weights_path(backbone: Backbone) -> Path:
    """Where torchvision looks for `backbone`'s weights file: $TORCH_HOME/hub/checkpoints/<file name>."""
    enum = torchvision.models.get_model_weights(backbone.arch)[backbone.weights]
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(enum.url).path).name


def check_weights(backbone: Backbone) -> None:
    """Raise MissingWeightsError unless `backbone` needs no weights or its file is installed."""
    if not backbone.pretrained:
        return
    path = weights_path(backbone)
    if path.is_file():
        return
    how = "Install them with `make setup` (scripts/setup.sh), or copy" if backbone.name == DEFAULT_BACKBONE else "Copy"
    raise MissingWeightsError(
        f"pretrained weights for backbone {backbone.name!r} are not installed: {path} does not exist, "
        f"and weights are never downloaded at run time. {how} {path.name} into {path.parent} "
        "($TORCH_HOME/hub/checkpoints). To audit without pretrained weights, say so explicitly: "
        "backbone 'pixels' (shape features, no network), or the mislabel source 'finetune' with "
        "pretrained false (a network trained from scratch on the dataset)."
    )


class PooledFeatures(nn.Module):
    """Runs a torchvision `features` stack and concatenates grid-pooled outputs of chosen blocks.

    Input (B, 3, H, W) normalised images; output (B, D) float.
    """

    def __init__(self, blocks: nn.Sequential, pools: Sequence[tuple[int, int, int]]) -> None:
        super().__init__()
        self.grids = {block: grid for block, grid, _ in pools}
        self.blocks = blocks[: max(self.grids) + 1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = []
        x = images
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.grids:
                pooled.append(grid_pool(x, self.grids[index]) if torch.onnx.is_in_onnx_export()
                              else nn.functional.adaptive_avg_pool2d(x, self.grids[index]).flatten(1))
        return torch.cat(pooled, dim=1)


def build_extractor(backbone: Backbone) -> nn.Module:
    """The frozen feature extractor of a pretrained backbone, in eval mode. Raises MissingWeightsError."""
    if not backbone.pretrained:
        raise ValueError(f"backbone {backbone.name!r} has no network to build")
    check_weights(backbone)
    model = torchvision.models.get_model(backbone.arch, weights=backbone.weights)
    if backbone.arch.startswith("resnet"):
        blocks = nn.Sequential(*list(model.children())[:-2])  # everything before avgpool and fc
    else:
        blocks = model.features
    extractor = PooledFeatures(blocks, backbone.pools)
    extractor.eval()
    extractor.requires_grad_(False)
    return extractor


def pick_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def loader_workers(device: Optional[torch.device] = None) -> int:
    """DataLoader worker processes. On the CPU one per core, at most 4: the network's threads share the cores
    with them, and while the workers decode a large phone photo (20 ms at 12 MP) the network waits (on 2
    cores a second worker made 12 MP photos 1.45x faster and the demo's small ones no slower, BENCHMARKS.md);
    for a GPU, which outruns any one decoder, every other core decodes (at most CUDA_MAX_WORKERS)."""
    if device is not None and device.type == "cuda":
        return max(0, min(CUDA_MAX_WORKERS, (os.cpu_count() or 1) - 1))
    return min(4, os.cpu_count() or 1)


def batch_loader(dataset: Dataset, batch_size: int, *, device: Optional[torch.device] = None) -> DataLoader:
    """Batches in order, decoded by worker processes when there is more than one batch; for a GPU into
    pinned memory (so copies to it can be asynchronous), several batches ahead."""
    workers = loader_workers(device) if len(dataset) > batch_size else 0
    on_cuda = device is not None and device.type == "cuda"
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=on_cuda,
                      prefetch_factor=CUDA_PREFETCH_BATCHES if on_cuda and workers else None)


def _embed_pixels(files: ScannedFiles, *, batch_size: int, progress: ProgressCallback) -> tuple[np.ndarray, list[int]]:
    """Weight-free features, shape (N, BACKBONES["pixels"].dim): the difference image's pixels, its HOG,
    then the colour summary."""
    vectors = np.zeros((len(files), get_backbone("pixels").dim), dtype=np.float32)
    failed: list[int] = []
    done = 0
    for images, colours, ok in batch_loader(DifferenceImages(files.paths, root=files.root,
                                                        content_hashes=files.content_hashes), batch_size):
        images = images.numpy()
        vectors[done:done + len(images)] = pixels_vectors(images, colours.numpy())
        failed.extend(done + int(i) for i in np.flatnonzero(~ok.numpy()))
        done += len(images)
        progress(done / len(files), f"embedded {done}/{len(files)} images")
    return vectors, failed


def _embed_network(
    files: ScannedFiles,
    backbone: Backbone,
    *,
    image_size: int,
    view: str,
    batch_size: int,
    device: torch.device,
    progress: ProgressCallback,
    runtime: Optional[str] = None,
) -> tuple[np.ndarray, list[int]]:
    """Pooled backbone features, shape (N, backbone.dim), and the indices of files that failed to decode.

    The network runs as network_runner chooses. On a GPU: uint8 batches from pinned memory are copied
    asynchronously and normalised there (once per device: core.models.data keeps the constants there), the
    network runs channels-last under float16 autocast, every batch has batch_size images (the last is
    padded, its padding's outputs dropped) so cuDNN tunes once, and outputs stay on the GPU until the
    end, so the host never waits for a batch while the workers decode the next ones. On a CPU each batch
    goes straight into the result: the vectors are held once.
    """
    run = network_runner(backbone, device, image_size, batch_size, runtime)
    vectors = np.empty((len(files), backbone.dim), dtype=np.float32)
    on_device: list[tuple[int, torch.Tensor]] = []  # (first row, outputs) kept on a GPU until the end
    failed: list[int] = []
    done = 0
    crops = ObjectCrops(files.paths, image_size, view, root=files.root, content_hashes=files.content_hashes)
    for images, ok in batch_loader(crops, batch_size, device=device):
        outputs = run(images)
        if device.type == "cpu":
            vectors[done:done + len(outputs)] = outputs.numpy()
        else:
            on_device.append((done, outputs))
        failed.extend(done + int(i) for i in np.flatnonzero(~ok.numpy()))
        done += len(images)
        progress(done / len(files), f"embedded {done}/{len(files)} images")
    for start, outputs in on_device:
        vectors[start:start + len(outputs)] = outputs.cpu().numpy()
    return vectors, failed


def network_runner(backbone: Backbone, device: torch.device, image_size: int, batch_size: int,
                   runtime: Optional[str] = None) -> Runner:
    """How `backbone`'s frozen extractor runs at image_size px on `device` (core.models.runtime: ONNX Runtime on a
    CPU unless `runtime` or $LISTING_AUDIT_RUNTIME says otherwise, PyTorch on CUDA). Raises
    MissingWeightsError."""
    check_weights(backbone)
    return open_runner(lambda: build_extractor(backbone), name=backbone.name, weights=weights_path(backbone),
                       image_size=image_size, device=device, batch_size=batch_size, runtime=runtime)


class NetworkEmbedder:
    """Ray Data actor: holds a backbone's extractor on its device (CUDA when the actor was given a GPU)
    and embeds batches of crop_batch's output: index, pixels, ok -> index, vector float32 (B, D), ok."""

    def __init__(self, backbone: str, device: str, batch_size: int, image_size: int,
                 runtime: Optional[str] = None) -> None:
        self.run = network_runner(get_backbone(backbone), torch.device(device), image_size, batch_size, runtime)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.run(torch.from_numpy(batch["pixels"]))
        return {"index": batch["index"], "vector": vectors.cpu().numpy(), "ok": batch["ok"]}


def _embed_on_ray(files: ScannedFiles, backbone: Backbone, *, image_size: int, view: str,
                  batch_size: Optional[int], device: str, progress: ProgressCallback,
                  runtime: Optional[str] = None) -> tuple[np.ndarray, list[int]]:
    """embed_images on Ray Data: vectors (N, backbone.dim) and the indices of files that failed to decode.

    Files are decoded by tasks and a network runs in actors: one per GPU with the cluster's GPUs (device
    "auto" or "cuda"; decoding stays on the CPUs), else one per CPU (Ray Data fuses the decoding into
    them). The nodes read the files and the weights file from their own disks.
    """
    rows = [{"path": str(path), "content_hash": content_hash or ""}
            for path, content_hash in zip(files.paths, files.content_hashes)]
    if not backbone.pretrained:
        stages = [RayStage(pixels_batch, kwargs={"root": files.root})]
        size = batch_size or DEFAULT_BATCH_SIZE
    else:
        gpus = _ray_gpus(device)
        size = batch_size or (CUDA_BATCH_SIZE if gpus else DEFAULT_BATCH_SIZE)
        decode = RayStage(crop_batch, kwargs={"side": image_size, "view": view, "root": files.root})
        embed = RayStage(NetworkEmbedder, actors=gpus or cluster_cpus(), num_gpus=1 if gpus else 0,
                         constructor_kwargs={"backbone": backbone.name, "device": "cuda" if gpus else "cpu",
                                             "batch_size": size, "image_size": image_size, "runtime": runtime})
        stages = [decode, embed]
    columns = map_batches_on_ray(rows, stages, batch_size=size, progress=progress)
    return columns["vector"].astype(np.float32, copy=False), [int(i) for i in np.flatnonzero(~columns["ok"])]


def _ray_gpus(device: str) -> int:
    """GPU actors to run: the cluster's GPUs for "auto" and "cuda", none for "cpu"; ValueError for "cuda"
    on a cluster without GPUs."""
    if device == "cpu":
        return 0
    gpus = cluster_gpus()
    if device != "auto" and not gpus:
        raise ValueError(f"device {device!r} asked for, but the Ray cluster has no GPUs")
    return gpus


def embed_images(
    paths: Sequence[str | os.PathLike],
    *,
    backbone: str = DEFAULT_BACKBONE,
    image_size: int = DEFAULT_IMAGE_SIZE,
    view: str = DEFAULT_VIEW,
    batch_size: Optional[int] = None,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
    executor: str = "local",
    runtime: Optional[str] = None,
    root: Optional[str | os.PathLike] = None,
    content_hashes: Optional[Sequence[str]] = None,
) -> np.ndarray:
    """Embed image files: float32 array of shape (N, D), D = get_backbone(backbone).dim.

    Each image is decoded upright and cropped to its object (view "crop") or padded to a square
    (view "whole"). Networks see it at image_size x image_size, ImageNet-normalised, frozen (fp16
    autocast on CUDA); "pixels" ignores image_size and view (always the crop). runtime: how a network
    runs (core.models.runtime.RUNTIMES; None: $LISTING_AUDIT_RUNTIME, else ONNX Runtime on a CPU; the vectors
    are the same within 1e-5 whichever runs, so they share one cache key).
    batch_size: None for DEFAULT_BATCH_SIZE, or CUDA_BATCH_SIZE for a network on a GPU. root and
    content_hashes (parallel to paths): as the scan saw the files; given, a file that resolves outside
    root or no longer hashes as the scan recorded is not embedded (core.files.read_scanned). Raises
    MissingWeightsError when the backbone's weights are not installed and UnreadableImageError naming
    files that do not decode or are no longer as the scan saw them. executor "ray": the same on Ray Data (see _embed_on_ray; equal to the local
    vectors within float rounding, 1e-5), raising core.executors.ExecutorError when Ray cannot be used.
    """
    spec = get_backbone(backbone)
    _check_view(view)
    progress = progress or (lambda fraction, message: None)
    if not paths:
        return np.zeros((0, spec.dim), dtype=np.float32)
    files = ScannedFiles(paths, root=None if root is None else str(root), content_hashes=content_hashes)
    if resolve_executor(executor) == "ray":
        vectors, failed = _embed_on_ray(files, spec, image_size=image_size, view=view, batch_size=batch_size,
                                        device=device, progress=progress, runtime=runtime)
    elif spec.pretrained:
        chosen = pick_device(device)
        size = batch_size or (CUDA_BATCH_SIZE if chosen.type == "cuda" else DEFAULT_BATCH_SIZE)
        vectors, failed = _embed_network(files, spec, image_size=image_size, view=view, batch_size=size,
                                         device=chosen, progress=progress, runtime=runtime)
    else:
        vectors, failed = _embed_pixels(files, batch_size=batch_size or DEFAULT_BATCH_SIZE, progress=progress)
    if failed:
        shown = ", ".join(str(paths[i]) for i in failed[:5])
        raise UnreadableImageError(f"{len(failed)} image(s) could not be decoded or changed since the scan "
                                   f"(rescan the dataset): {shown}")
    return vectors


def _check_view(view: str) -> None:
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; views are: {', '.join(VIEWS)}")


def cache_key(backbone: str, *, image_size: int = DEFAULT_IMAGE_SIZE, view: str = DEFAULT_VIEW) -> str:
    """The name vectors are cached under: everything that changes them, e.g. "mobilenet_v2@112/crop1"
    or "mobilenet_v2@224/whole1"."""
    spec = get_backbone(backbone)
    _check_view(view)
    if not spec.pretrained:
        return f"{spec.name}@{PIXELS_SIDE}/{PREPROCESSING_VERSION}"
    return f"{spec.name}@{image_size}/{VIEWS[view]}"


@dataclass
class Embeddings:
    """vectors: float32 (N, D) in input order; key: the cache key; computed / reused: how many
    distinct files were embedded now / taken from the cache."""

    vectors: np.ndarray
    key: str
    computed: int = 0
    reused: int = 0


def embed_cached(
    paths: Sequence[str | os.PathLike],
    content_hashes: Sequence[str],
    *,
    store: Optional[EmbeddingStore],
    backbone: str = DEFAULT_BACKBONE,
    image_size: int = DEFAULT_IMAGE_SIZE,
    view: str = DEFAULT_VIEW,
    batch_size: Optional[int] = None,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
    executor: str = "local",
    runtime: Optional[str] = None,
    root: Optional[str | os.PathLike] = None,
) -> Embeddings:
    """`embed_images` through a cache keyed by content hash: files already in `store` are not decoded,
    identical files are embedded once, and new vectors are written back every CACHE_CHUNK_IMAGES images,
    so an audit stopped half-way keeps what it embedded. `store` None: no cache.

    paths and content_hashes are parallel, length N. Returns Embeddings with vectors (N, D): the only
    array of all N vectors; cached and new ones are read and written a chunk at a time. executor: where
    the new vectors are computed ("local" or "ray") and runtime how a network runs (see embed_images).
    Every file is read as the scan saw it (embed_images' root and content_hashes), so a picture put in a
    file's place after the scan is never cached under the old one's hash.
    """
    if len(paths) != len(content_hashes):
        raise ValueError(f"{len(paths)} paths but {len(content_hashes)} content hashes")
    key = cache_key(backbone, image_size=image_size, view=view)
    report = progress or (lambda fraction, message: None)
    rows_of: dict[str, list[int]] = {}
    for row, content_hash in enumerate(content_hashes):
        rows_of.setdefault(content_hash, []).append(row)
    vectors = np.zeros((len(content_hashes), get_backbone(backbone).dim), dtype=np.float32)
    distinct = list(rows_of)
    found = _read_cached(store, distinct, key, vectors, rows_of)
    todo = [content_hash for content_hash in distinct if content_hash not in found]
    if todo:
        log.info("embedding %d images with %s (%d from cache)", len(todo), key, len(found))
    for start in range(0, len(todo), CACHE_CHUNK_IMAGES):
        chunk = todo[start:start + CACHE_CHUNK_IMAGES]
        chunk_progress = (lambda f, m, s=start, n=len(chunk):
                          report((s + f * n) / len(todo), f"embedded {s + int(f * n)}/{len(todo)} images"))
        fresh = embed_images([paths[rows_of[h][0]] for h in chunk], backbone=backbone, image_size=image_size,
                             view=view, batch_size=batch_size, device=device, progress=chunk_progress,
                             executor=executor, runtime=runtime, root=root, content_hashes=chunk)
        for content_hash, vector in zip(chunk, fresh):
            vectors[rows_of[content_hash]] = vector
        if store is not None:
            store.put_many(dict(zip(chunk, fresh)), key)
    return Embeddings(vectors, key, computed=len(todo), reused=len(found))


def _read_cached(store: Optional[EmbeddingStore], distinct: list[str], key: str, vectors: np.ndarray,
                 rows_of: dict[str, list[int]]) -> set[str]:
    """Copy the cached vectors of `distinct` hashes into their rows of `vectors` (N, D), a chunk at a
    time; returns the hashes found."""
    found: set[str] = set()
    if store is None:
        return found
    for start in range(0, len(distinct), CACHE_CHUNK_IMAGES):
        for content_hash, vector in store.get_many(distinct[start:start + CACHE_CHUNK_IMAGES], key).items():
            vectors[rows_of[content_hash]] = vector
            found.add(content_hash)
    return found
