"""Training and evaluation throughput: our loop (decode-once cache, in-memory batches, on-device augmentation)
against the usual tutorial loop (torchvision ImageFolder + transforms + DataLoader, decoding every JPEG every epoch).

Usage: python bench/train.py [--images 512] [--source-size 640] [--image-size 224] [--batch-size 64]
                             [--epochs 1] [--workers N] [--device auto|cpu|cuda] [--data DIR]

Both loops train the same MobileNetV2 (ImageNet weights when installed) with Adam,
the same augmentation kinds (random resized crop, flip, colour jitter) and, on
CUDA, the same autocast precision; only the data path differs. Generated photo-like
JPEGs of source-size x 3/4 source-size pixels are used unless --data names an
ImageFolder dataset. Rates are images per second over whole epochs after a few
warm-up steps; "cache build" is the one-off decode of our loop (later runs at the
same image size read the cache). On CUDA the GPU's busy share is sampled with
torch.cuda.utilization (needs the NVML bindings).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.imaging import sha256_hex  # noqa: E402
from core.models.data import (IMAGENET_MEAN, IMAGENET_STD, Augmentation, MemoryBatches, load_images, place_pixels)  # noqa: E402
from core.models.classifiers import amp_dtype, build_model, pick_device, weights_available  # noqa: E402
from core.models.loop import evaluate, train_one_epoch  # noqa: E402

CLASSES = 4
WARMUP_STEPS = 3


def write_jpegs(root: Path, count: int, width: int, *, seed: int = 0) -> None:
    """`count` photo-like JPEGs (smooth colour fields plus grain), width x 3/4 width, in CLASSES folders."""
    rng = np.random.default_rng(seed)
    height = width * 3 // 4
    for index in range(count):
        folder = root / f"class_{index % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(blocks).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, size=smooth.shape, dtype=np.int16)
        Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(folder / f"{index:06d}.jpg", quality=85)


class GpuBusySampler:
    """Samples torch.cuda.utilization() every 0.1 s in a thread; `share` is the mean busy fraction (None off CUDA)."""

    def __init__(self, device: torch.device):
        self.enabled = device.type == "cuda"
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if self.enabled:
            try:
                torch.cuda.utilization(device)
            except (ModuleNotFoundError, RuntimeError):
                self.enabled = False

    def __enter__(self) -> "GpuBusySampler":
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append(torch.cuda.utilization() / 100.0)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def share(self) -> Optional[float]:
        return statistics.fmean(self.samples) if self.samples else None


@dataclass
class Result:
    loop: str
    train_images_per_s: float
    eval_images_per_s: float
    gpu_busy_train: Optional[float] = None
    cache_build_images_per_s: Optional[float] = None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], int]) -> float:
    """Images per second of `work` (which returns how many images it processed)."""
    synchronize(device)
    started = time.perf_counter()
    images = work()
    synchronize(device)
    return images / (time.perf_counter() - started)


def new_model(device: torch.device) -> torch.nn.Module:
    """MobileNetV2 in channels-last memory format (as core.models.loop.new_model: faster on GPU and CPU)."""
    model = build_model("mobilenet_v2", CLASSES, pretrained=weights_available("mobilenet_v2"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model.to(device, memory_format=torch.channels_last)


def bench_ours(root: Path, args: argparse.Namespace, device: torch.device, cache_dir: Path) -> Result:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    paths = [p.relative_to(root).as_posix() for p in files]
    hashes = [sha256_hex(p.read_bytes()) for p in files]  # the scan stores these
    class_names = sorted({p.split("/")[0] for p in paths})
    labels = np.array([class_names.index(p.split("/")[0]) for p in paths])
    started = time.perf_counter()
    decoded = load_images(root, paths, hashes, size=args.image_size, cache_dir=cache_dir, workers=args.workers)
    cache_rate = len(paths) / (time.perf_counter() - started)
    pixels = place_pixels(decoded.pixels, device)
    dtype = amp_dtype(device, True)
    model = new_model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    criterion = torch.nn.CrossEntropyLoss()
    everything = np.arange(len(paths))
    train = MemoryBatches(pixels, labels, everything, batch_size=args.batch_size, device=device,
                          sampler="weighted", augmentation=Augmentation(), training=True)
    warmup = MemoryBatches(pixels, labels, everything[: WARMUP_STEPS * args.batch_size],
                           batch_size=args.batch_size, device=device, augmentation=Augmentation(), training=True)
    model.train()
    train_one_epoch(model, warmup, criterion, optimizer, epoch=0, scaler=scaler, autocast_dtype=dtype)

    def train_epochs() -> int:
        images = 0
        for epoch in range(args.epochs):
            images += train_one_epoch(model, train, criterion, optimizer, epoch=epoch, scaler=scaler,
                                      autocast_dtype=dtype)["images"]
        return images

    with GpuBusySampler(device) as busy:
        train_rate = timed(device, train_epochs)
    validation = MemoryBatches(pixels, labels, everything, batch_size=args.batch_size, device=device,
                               pad=device.type == "cuda")
    eval_rate = timed(device, lambda: len(evaluate(model, validation, autocast_dtype=dtype).probs))
    return Result("ours (decode-once cache)", train_rate, eval_rate, busy.share, cache_rate)


def bench_plain(root: Path, args: argparse.Namespace, device: torch.device) -> Result:
    normalise = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_set = datasets.ImageFolder(root, transforms.Compose([
        transforms.RandomResizedCrop(args.image_size, scale=(0.6, 1.0)), transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(0.2, 0.2, 0.2), transforms.ToTensor(), normalise,
    ]))
    eval_set = datasets.ImageFolder(root, transforms.Compose([
        transforms.Resize(args.image_size), transforms.CenterCrop(args.image_size), transforms.ToTensor(), normalise,
    ]))
    loader_options = {"batch_size": args.batch_size, "num_workers": args.workers, "pin_memory": device.type == "cuda"}
    dtype = amp_dtype(device, True)
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    model = new_model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    criterion = torch.nn.CrossEntropyLoss()

    def train_steps(limit: Optional[int]) -> int:
        model.train()
        images = 0
        for step, (inputs, targets) in enumerate(DataLoader(train_set, shuffle=True, **loader_options)):
            if limit is not None and step >= limit:
                break
            inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            with autocast():
                loss = criterion(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            images += len(targets)
        return images

    @torch.inference_mode()
    def evaluate_all() -> int:
        model.eval()
        images = 0
        for inputs, _ in DataLoader(eval_set, **loader_options):
            with autocast():
                model(inputs.to(device, non_blocking=True)).float().softmax(1).cpu()
            images += len(inputs)
        return images

    train_steps(WARMUP_STEPS)
    with GpuBusySampler(device) as busy:
        train_rate = timed(device, lambda: sum(train_steps(None) for _ in range(args.epochs)))
    eval_rate = timed(device, evaluate_all)
    return Result("plain (ImageFolder + DataLoader)", train_rate, eval_rate, busy.share)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def compare_loops(args: argparse.Namespace) -> tuple[dict, list[Result]]:
    """Both loops on generated JPEGs (or args.data): the setup and [plain, ours] results."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data or Path(scratch) / "data"
        if args.data is None:
            write_jpegs(root, args.images, args.source_size)
        count = sum(1 for p in Path(root).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        results = [bench_plain(Path(root), args, device), bench_ours(Path(root), args, device, Path(scratch) / "cache")]
    setup = {"device": describe(device), "images": count, "image_size": args.image_size, "batch_size": args.batch_size,
             "epochs": args.epochs, "workers": args.workers, "torch": torch.__version__, "python": platform.python_version()}
    return setup, results


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--source-size", type=int, default=640, help="width of the generated JPEGs")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs of each loop")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="DataLoader workers of the plain loop, decode threads of ours")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data", type=Path, default=None, help="an ImageFolder dataset instead of generated JPEGs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    setup, results = compare_loops(args)
    plain, ours = results
    if args.json:
        print(json.dumps({"setup": setup, "results": [asdict(r) for r in results]}, indent=2))
        return
    print(", ".join(f"{k} {v}" for k, v in setup.items()))
    print(f"{'loop':<34} {'train img/s':>11} {'eval img/s':>10} {'GPU busy':>8} {'cache build img/s':>17}")
    for r in results:
        busy = f"{r.gpu_busy_train:.0%}" if r.gpu_busy_train is not None else "-"
        cache = f"{r.cache_build_images_per_s:.0f}" if r.cache_build_images_per_s else "-"
        print(f"{r.loop:<34} {r.train_images_per_s:>11.1f} {r.eval_images_per_s:>10.1f} {busy:>8} {cache:>17}")
    print(f"speed-up: training x{ours.train_images_per_s / plain.train_images_per_s:.2f}, "
          f"evaluation x{ours.eval_images_per_s / plain.eval_images_per_s:.2f}")


if __name__ == "__main__":
    main()
