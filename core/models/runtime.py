"""How a frozen backbone runs: ONNX Runtime on a CPU, PyTorch on a GPU and wherever ONNX Runtime cannot run.

On a CPU, ONNX Runtime gives MobileNetV2 the same vectors as PyTorch (cosine 1.0000, max abs difference
about 5e-5: it sits closer to a float64 reference than PyTorch's float32 does) 1.6 to 3.6 times faster
(BENCHMARKS.md, "Embedding runtime"). Its graph is exported once from the torchvision network on the
user's machine, checked against PyTorch on one batch, and cached beside the weights
($TORCH_HOME/hub/checkpoints/onnx/), keyed by the weights' sha256, the input side and the versions of the
exporter and the runtime; nothing is downloaded. The graph takes uint8 (B, S, S, 3) pixels, as the
decoders give them, and does the ImageNet normalisation itself. A missing or broken runtime, a cache
folder that cannot be written or a graph that does not match falls back to PyTorch with one warning in
the log. `LISTING_AUDIT_RUNTIME` (auto | onnxruntime | torch) overrides the choice; "auto" is ONNX
Runtime on a CPU and PyTorch (float16 autocast) on CUDA.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
import torch
from torch import nn

from core.models.data import to_model_input

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnxruntime", "torch")
RUNTIME_ENV = "LISTING_AUDIT_RUNTIME"
#: ONNX opset of exported graphs, and the version of the export (bump it when the graph changes).
OPSET = 17
GRAPH_VERSION = 1
#: An exported graph is used only when its vectors on the check batch are this close to PyTorch's
#: (smallest cosine similarity over the batch).
MIN_COSINE = 0.9999
#: Images in the batch an exported graph is checked on.
CHECK_IMAGES = 4


class Runner(Protocol):
    """uint8 (B, S, S, 3) images -> float32 (B, D) vectors (a torch tensor; on the runner's device)."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def resolve_runtime(runtime: Optional[str], device: torch.device) -> str:
    """"torch" or "onnxruntime" for `runtime` (None: $LISTING_AUDIT_RUNTIME, else "auto") on `device`.
    ONNX Runtime runs on CPUs only here; ValueError for an unknown name."""
    chosen = runtime or os.environ.get(RUNTIME_ENV) or "auto"
    if chosen not in RUNTIMES:
        raise ValueError(f"unknown runtime {chosen!r}; runtimes are: {', '.join(RUNTIMES)}")
    if device.type != "cpu" or chosen == "torch":
        return "torch"
    return "onnxruntime"


def grid_pool(maps: torch.Tensor, grid: int) -> torch.Tensor:
    """adaptive_avg_pool2d(maps, grid).flatten(1) written as window means, which ONNX can express for any
    map size (its exporter refuses an adaptive pool whose grid does not divide the map). maps (B, C, H, W)
    with H and W fixed -> (B, C * grid * grid), the same windows as PyTorch's: rows floor(i*H/g) to
    ceil((i+1)*H/g)."""
    height, width = int(maps.shape[-2]), int(maps.shape[-1])
    windows = [maps[:, :, (i * height) // grid:-((-(i + 1) * height) // grid),
                    (j * width) // grid:-((-(j + 1) * width) // grid)].mean(dim=(2, 3))
               for i in range(grid) for j in range(grid)]
    return torch.stack(windows, dim=2).flatten(1)


class TorchRunner:
    """A frozen extractor in PyTorch: channels-last (about twice the CPU throughput of MobileNetV2's
    depthwise convolutions, oneDNN), under inference mode and float16 autocast on CUDA, where a short
    batch is padded to batch_size (so cuDNN tunes once) and the padding's outputs dropped."""

    def __init__(self, extractor: nn.Module, device: torch.device, batch_size: int) -> None:
        self.extractor = extractor.to(device, memory_format=torch.channels_last)
        self.device, self.batch_size = device, batch_size
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        count = len(images)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.device.type == "cuda" else nullcontext()
        with torch.inference_mode(), autocast:
            images = images.to(self.device, non_blocking=True)
            if self.device.type == "cuda" and count < self.batch_size:
                images = torch.cat([images, images[-1:].expand(self.batch_size - count, -1, -1, -1)])
            return self.extractor(to_model_input(images))[:count].float()


class OnnxRunner:
    """An exported graph in ONNX Runtime on the CPU, with as many threads as PyTorch uses."""

    def __init__(self, graph: Path) -> None:
        self.session = _session(str(graph), torch.get_num_threads())

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"pixels": np.ascontiguousarray(images.numpy())})[0])


def open_runner(build: Callable[[], nn.Module], *, name: str, weights: Path, image_size: int,
                device: torch.device, batch_size: int, runtime: Optional[str] = None) -> Runner:
    """The runner for one backbone: `build()` makes its frozen extractor ((B, 3, S, S) normalised -> (B, D),
    called only when PyTorch runs it or a graph must be exported); name, weights (its weights file) and
    image_size key the cached graph. Falls back to PyTorch, with one warning, when ONNX Runtime cannot run."""
    if resolve_runtime(runtime, device) == "onnxruntime":
        try:
            return onnx_runner(build, name=name, weights=weights, image_size=image_size)
        except Exception as error:  # noqa: BLE001 - whatever stops an optional runtime, PyTorch runs instead
            _warn_once(f"ONNX Runtime not used for {name} ({type(error).__name__}: {error}); embedding with PyTorch")
    return TorchRunner(build(), device, batch_size)


def onnx_runner(build: Callable[[], nn.Module], *, name: str, weights: Path, image_size: int) -> OnnxRunner:
    """ONNX Runtime on the cached graph, exported (and checked) first when it is missing or does not load."""
    path = graph_path(name, weights, image_size)
    if path.is_file():
        try:
            return OnnxRunner(path)
        except Exception as error:  # noqa: BLE001 - a damaged cache file is exported again
            log.warning("cached graph %s does not load (%s): exporting it again", path.name, error)
    export_graph(build(), image_size, path)
    return OnnxRunner(path)


def graph_path(name: str, weights: Path, image_size: int) -> Path:
    """Where the graph of backbone `name` at `image_size` px is cached: beside the weights, named by their
    sha256 and the exporter's (torch) and runtime's versions."""
    import onnxruntime

    return weights.parent / "onnx" / (
        f"{name}-{_sha256(weights)[:16]}-{image_size}px-opset{OPSET}-v{GRAPH_VERSION}"
        f"-torch{torch.__version__.split('+')[0]}-ort{onnxruntime.__version__}.onnx")


def export_graph(extractor: nn.Module, image_size: int, path: Path) -> None:
    """Export `extractor` with its input conversion (uint8 (B, S, S, 3) -> vectors (B, D), any B) to `path`,
    written atomically after its vectors on a check batch match PyTorch's (RuntimeError otherwise)."""
    model = _PixelsToVectors(extractor).eval()
    check = _check_batch(image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing constants and its deprecation
            torch.onnx.export(model, (check[:2],), str(partial), input_names=["pixels"], output_names=["vectors"],
                              dynamic_axes={"pixels": {0: "batch"}, "vectors": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
            expected = model(check).numpy()
        got = _session(str(partial), 1).run(None, {"pixels": check.numpy()})[0]
        cosine = float(min_cosine(got, expected))
        if cosine < MIN_COSINE:
            raise RuntimeError(f"the exported graph's vectors differ from PyTorch's (cosine {cosine:.6f})")
        os.replace(partial, path)
        log.info("exported %s", path)
    finally:
        partial.unlink(missing_ok=True)
        _session.cache_clear()


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of two (N, D) arrays: float64 (N,)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-30)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine similarity of two (N, D) arrays."""
    return float(row_cosines(a, b).min())


class _PixelsToVectors(nn.Module):
    """The graph exported: the decoders' uint8 pixels in, the extractor's vectors out."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.extractor(to_model_input(pixels))


def _check_batch(image_size: int) -> torch.Tensor:
    """CHECK_IMAGES fixed uint8 (S, S, 3) images: gradients with noise, so every channel and position varies."""
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 255, image_size)
    base = (ramp[None, :, None] * 0.5 + ramp[:, None, None] * 0.5).expand(image_size, image_size, 3)
    noise = torch.randint(0, 96, (CHECK_IMAGES, image_size, image_size, 3), generator=generator)
    return (base[None] * 0.6 + noise).clamp(0, 255).to(torch.uint8)


@functools.lru_cache(maxsize=8)
def _session(graph: str, threads: int):
    """An ONNX Runtime CPU session on `graph` with `threads` intra-op threads (one per graph and count)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, modified_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    """sha256 of a weights file, computed once per version of the file in a process."""
    stat = path.stat()
    return _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)
