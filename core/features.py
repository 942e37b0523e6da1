"""Image embeddings: frozen ImageNet backbones (or raw pixels), one vector per image, cached by content hash.

`BACKBONES` maps a name to a `Backbone`; `embed_images` turns image files into an (N, D) float32
array; `embed_cached` does the same through an `EmbeddingStore` so a re-audit recomputes nothing.
Pretrained weights are only ever read from torch's hub cache: a missing file raises
`MissingWeightsError`, never a download and never a silently random network.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.checks.base import EmbeddingStore, ProgressCallback
from core.imaging import open_rgb

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_BACKBONE = "mobilenet_v2"
DEFAULT_IMAGE_SIZE = 160
DEFAULT_BATCH_SIZE = 64
#: The side, in pixels, of the thumbnail whose pixels are the "pixels" backbone's features.
PIXELS_SIDE = 32
#: Errors Pillow raises on a file it cannot decode.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class MissingWeightsError(RuntimeError):
    """A backbone's pretrained weights file is not installed; the message says how to install it."""


class UnreadableImageError(RuntimeError):
    """Image files that could not be decoded for embedding (they changed since the scan)."""


@dataclass(frozen=True)
class Backbone:
    """A named feature extractor.

    arch: torchvision model name (None for "pixels"); weights: name of the torchvision weights
    enum member ("IMAGENET1K_V1"), None when the backbone needs no weights file; layers: indices
    of the `features` blocks whose globally average-pooled outputs are concatenated (the last
    block only when empty); dim: the embedding's length.
    """

    name: str
    arch: Optional[str]
    weights: Optional[str]
    dim: int
    layers: tuple[int, ...] = ()
    description: str = ""

    @property
    def pretrained(self) -> bool:
        return self.weights is not None


BACKBONES: dict[str, Backbone] = {
    backbone.name: backbone
    for backbone in (
        Backbone("mobilenet_v2", "mobilenet_v2", "IMAGENET1K_V1", 1280 + 160 + 96, layers=(13, 16, 18),
                 description="MobileNetV2, ImageNet weights; blocks 13, 16 and the last, pooled"),
        Backbone("resnet18", "resnet18", "IMAGENET1K_V1", 512, description="ResNet-18, ImageNet weights"),
        Backbone("resnet50", "resnet50", "IMAGENET1K_V2", 2048, description="ResNet-50, ImageNet weights"),
        Backbone("efficientnet_b0", "efficientnet_b0", "IMAGENET1K_V1", 1280,
                 description="EfficientNet-B0, ImageNet weights"),
        Backbone("pixels", None, None, 3 * PIXELS_SIDE * PIXELS_SIDE,
                 description=f"no network: the image's {PIXELS_SIDE}x{PIXELS_SIDE} RGB pixels (needs no weights)"),
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
    raise MissingWeightsError(
        f"pretrained weights for backbone {backbone.name!r} are not installed: {path} does not exist, "
        "and they are never downloaded at run time. "
        + (
            "Install them with `make setup` (scripts/setup.sh), or copy "
            if backbone.name == DEFAULT_BACKBONE else "Copy "
        )
        + f"{path.name} into {path.parent} ($TORCH_HOME/hub/checkpoints). "
        "To audit without pretrained weights, choose it explicitly: backbone 'pixels' (raw-pixel features, "
        "needs no weights), or the mislabel source 'finetune' with backbone 'scratch' "
        "(a small network trained from scratch on the dataset)."
    )


class PooledFeatures(nn.Module):
    """Runs a torchvision `features` stack and concatenates the global average pools of chosen blocks.

    Input (B, 3, H, W) normalised images; output (B, D) float.
    """

    def __init__(self, blocks: nn.Sequential, layers: Sequence[int]) -> None:
        super().__init__()
        last = max(layers)
        self.blocks = blocks[: last + 1]
        self.layers = frozenset(layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = []
        x = images
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.layers:
                pooled.append(x.mean(dim=(2, 3)))
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
    layers = backbone.layers or (len(blocks) - 1,)
    extractor = PooledFeatures(blocks, layers)
    extractor.eval()
    extractor.requires_grad_(False)
    return extractor


def pick_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_square(path: str | os.PathLike, image_size: int) -> Image.Image:
    """The image at `path` as upright RGB, resized to image_size x image_size pixels."""
    image = open_rgb(path, max_side=image_size)
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return image


class ImageFiles(Dataset):
    """Image files as normalised float tensors (3, S, S); an unreadable file yields zeros and ok=False."""

    def __init__(self, paths: Sequence[str | os.PathLike], image_size: int) -> None:
        self.paths = list(paths)
        self.image_size = image_size
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        try:
            image = load_square(self.paths[index], self.image_size)
        except DECODE_ERRORS as error:
            log.warning("cannot decode %s for embedding: %s", self.paths[index], error)
            return torch.zeros(3, self.image_size, self.image_size), False
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        return (pixels.float() / 255.0 - self.mean) / self.std, True


def loader_workers() -> int:
    """DataLoader worker processes: one core stays with the network, at most 4 decode."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _embed_pixels(paths: Sequence[str | os.PathLike], progress: ProgressCallback) -> tuple[np.ndarray, list[int]]:
    """Raw-pixel features: each image as PIXELS_SIDE^2 RGB values in [0, 1], shape (N, 3 * PIXELS_SIDE^2)."""
    vectors = np.zeros((len(paths), 3 * PIXELS_SIDE * PIXELS_SIDE), dtype=np.float32)
    failed = []
    for index, path in enumerate(paths):
        try:
            image = load_square(path, PIXELS_SIDE)
        except DECODE_ERRORS as error:
            log.warning("cannot decode %s for embedding: %s", path, error)
            failed.append(index)
            continue
        vectors[index] = np.asarray(image, dtype=np.float32).reshape(-1) / 255.0
        if (index + 1) % 256 == 0:
            progress((index + 1) / len(paths), f"embedded {index + 1}/{len(paths)} images")
    return vectors, failed


def _embed_network(
    paths: Sequence[str | os.PathLike],
    backbone: Backbone,
    *,
    image_size: int,
    batch_size: int,
    flip: bool,
    device: torch.device,
    progress: ProgressCallback,
) -> tuple[np.ndarray, list[int]]:
    """Pooled backbone features, shape (N, backbone.dim), and the indices of files that failed to decode."""
    extractor = build_extractor(backbone).to(device)
    on_cuda = device.type == "cuda"
    loader = DataLoader(
        ImageFiles(paths, image_size), batch_size=batch_size, shuffle=False,
        num_workers=loader_workers() if len(paths) > batch_size else 0, pin_memory=on_cuda,
    )
    vectors = np.zeros((len(paths), backbone.dim), dtype=np.float32)
    failed: list[int] = []
    done = 0
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=on_cuda):
        for images, ok in loader:
            images = images.to(device, non_blocking=True)
            features = extractor(images)
            if flip:
                features = (features + extractor(torch.flip(images, dims=[3]))) / 2
            vectors[done:done + len(images)] = features.float().cpu().numpy()
            failed.extend(done + int(i) for i in np.flatnonzero(~ok.numpy()))
            done += len(images)
            progress(done / len(paths), f"embedded {done}/{len(paths)} images")
    return vectors, failed


def embed_images(
    paths: Sequence[str | os.PathLike],
    *,
    backbone: str = DEFAULT_BACKBONE,
    image_size: int = DEFAULT_IMAGE_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    flip: bool = True,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Embed image files: float32 array of shape (N, D), D = get_backbone(backbone).dim.

    Images are decoded upright, resized to image_size x image_size, ImageNet-normalised and run
    through the frozen backbone under inference mode (fp16 autocast on CUDA); with `flip` the
    features of the image and its mirror image are averaged. Raises MissingWeightsError when the
    backbone's weights are not installed and UnreadableImageError naming files that do not decode.
    """
    spec = get_backbone(backbone)
    progress = progress or (lambda fraction, message: None)
    if not paths:
        return np.zeros((0, spec.dim), dtype=np.float32)
    if spec.pretrained:
        vectors, failed = _embed_network(
            paths, spec, image_size=image_size, batch_size=batch_size, flip=flip,
            device=pick_device(device), progress=progress,
        )
    else:
        vectors, failed = _embed_pixels(paths, progress)
    if failed:
        shown = ", ".join(str(paths[i]) for i in failed[:5])
        raise UnreadableImageError(f"{len(failed)} image(s) could not be decoded (rescan the dataset): {shown}")
    return vectors


def cache_key(backbone: str, *, image_size: int, flip: bool) -> str:
    """The name vectors are cached under: everything that changes them, e.g. "mobilenet_v2@160+flip"."""
    spec = get_backbone(backbone)
    if not spec.pretrained:
        return spec.name
    return f"{spec.name}@{image_size}{'+flip' if flip else ''}"


@dataclass
class Embeddings:
    """vectors: float32 (N, D) in input order; computed / reused: how many distinct files were embedded
    now / taken from the cache; key: the cache key."""

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
    batch_size: int = DEFAULT_BATCH_SIZE,
    flip: bool = True,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
) -> Embeddings:
    """`embed_images` through a cache keyed by content hash: files already in `store` are not decoded,
    identical files are embedded once, and new vectors are written back. `store` None: no cache.

    paths and content_hashes are parallel, length N. Returns Embeddings with vectors (N, D).
    """
    if len(paths) != len(content_hashes):
        raise ValueError(f"{len(paths)} paths but {len(content_hashes)} content hashes")
    key = cache_key(backbone, image_size=image_size, flip=flip)
    cached = store.get_many(list(set(content_hashes)), key) if store is not None else {}
    todo: dict[str, str | os.PathLike] = {}
    for path, content_hash in zip(paths, content_hashes):
        if content_hash not in cached and content_hash not in todo:
            todo[content_hash] = path
    if todo:
        log.info("embedding %d images with %s (%d from cache)", len(todo), key, len(cached))
        fresh = embed_images(
            list(todo.values()), backbone=backbone, image_size=image_size, batch_size=batch_size,
            flip=flip, device=device, progress=progress,
        )
        new = dict(zip(todo, fresh))
        if store is not None:
            store.put_many(new, key)
        cached = {**cached, **new}
    dim = get_backbone(backbone).dim
    vectors = np.stack([cached[h] for h in content_hashes]) if len(content_hashes) else np.zeros((0, dim), np.float32)
    return Embeddings(vectors.astype(np.float32, copy=False), key, computed=len(todo), reused=len(set(content_hashes)) - len(todo))
