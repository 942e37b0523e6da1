"""Scan throughput: cold scan, warm rescan and a plain one-core imagehash loop, on generated JPEGs.

Usage: python bench/scan.py [--images 4000] [--size 320] [--workers N] [--repeat 1]

"Cold" means an empty database (every file is decoded, validated, hashed); the
files themselves are in the OS page cache because they were just written, as
they are on a second scan of a real dataset. "Warm" rescans the same folder:
unchanged files (same size and mtime) are skipped.

Besides wall-clock rates the table gives CPU seconds (this process plus its
worker processes) and an "if the cores were free" rate: the CPU this process
spends before the first results and after the last (listing files, writing
the database) counted as serial, the rest (workers, and this process while
collecting their results) spread over the workers. On a machine shared with
other work the wall-clock rate understates the scanner; the CPU-based rate
depends much less on what else runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
import PIL
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.scan.inspect import default_workers  # noqa: E402
from db.engine import make_engine, make_session_factory  # noqa: E402
from jobs.scan import scan_dataset  # noqa: E402

CLASSES = 8


def write_jpegs(root: Path, count: int, size: int, *, seed: int = 0) -> list[Path]:
    """`count` size x size photo-like JPEGs (smooth colour fields plus grain) in CLASSES class folders."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        folder = root / f"class_{index % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        blocks = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(blocks).resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, size=smooth.shape, dtype=np.int16)
        pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
        path = folder / f"img_{index:06d}.jpg"
        Image.fromarray(pixels).save(path, quality=85)
        paths.append(path)
    return paths


@dataclass
class Timing:
    """One measured run: wall seconds; CPU seconds of this process (serial part, part overlapping the
    workers) and of its joined child processes."""

    wall: float
    serial_cpu: float
    overlapped_cpu: float = 0.0
    child_cpu: float = 0.0

    @property
    def cpu(self) -> float:
        return self.serial_cpu + self.overlapped_cpu + self.child_cpu

    def free_cores_seconds(self, workers: int) -> float:
        """Seconds the run would take with `workers` idle cores."""
        return self.serial_cpu + (self.overlapped_cpu + self.child_cpu) / workers


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def time_scan(db_path: Path, root: Path, workers: int) -> tuple[Timing, dict]:
    """Scan `root` into `db_path`; the progress messages mark when worker results start and stop arriving."""
    own_at: dict[str, float] = {}

    def mark(fraction: float, message: str) -> None:
        if message.endswith(" images") and "/" in message:  # "12/4000 images": a chunk of results arrived
            own_at.setdefault("first results", _cpu()[0])
        elif message == "saving":
            own_at["saving"] = _cpu()[0]

    engine = make_engine(db_path)
    try:
        own_before, children_before = _cpu()
        started = time.perf_counter()
        summary = scan_dataset(make_session_factory(engine), root, workers=workers, progress=mark)
        wall = time.perf_counter() - started
        own_after, children_after = _cpu()
    finally:
        engine.dispose()
    first, last = own_at.get("first results", own_at["saving"]), own_at["saving"]
    serial = (first - own_before) + (own_after - last)
    return Timing(wall, serial, last - first, children_after - children_before), summary


def time_plain_phash(paths: list[Path]) -> Timing:
    """`imagehash.phash(Image.open(p))` over `paths` on one core."""
    own_before, _ = _cpu()
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            imagehash.phash(image)
    own_after, _ = _cpu()
    return Timing(time.perf_counter() - started, own_after - own_before)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000, help="JPEGs to generate")
    parser.add_argument("--size", type=int, default=320, help="side of each JPEG, pixels")
    parser.add_argument("--workers", type=int, default=None, help="scan processes (default: all cores)")
    parser.add_argument("--baseline", type=int, default=500, help="images in the plain one-core imagehash loop")
    parser.add_argument("--repeat", type=int, default=1, help="cold+warm rounds; the best is reported")
    args = parser.parse_args(argv)
    workers = args.workers or default_workers()

    print(f"cpus: {os.cpu_count()} (using {workers} workers), {cpu_model()}")
    print(f"python {platform.python_version()}, pillow {PIL.__version__}, imagehash {imagehash.__version__}")
    with tempfile.TemporaryDirectory(prefix="scan-bench-") as tmp:
        root = Path(tmp) / "dataset"
        started = time.perf_counter()
        paths = write_jpegs(root, args.images, args.size)
        mean_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
        print(f"generated {len(paths)} {args.size}x{args.size} JPEGs (mean {mean_kb:.1f} KiB) "
              f"in {time.perf_counter() - started:.1f} s")

        colds, warms = [], []
        for round_index in range(args.repeat):
            db_path = Path(tmp) / f"bench-{round_index}.db"
            cold, summary = time_scan(db_path, root, workers)
            assert summary["images"] == len(paths) and not summary["unreadable"], summary
            warm, summary = time_scan(db_path, root, workers)
            assert summary["unchanged"] == len(paths), summary
            print(f"round {round_index + 1}: cold {len(paths) / cold.wall:,.0f} images/s, "
                  f"warm {len(paths) / warm.wall:,.0f} images/s")
            colds.append(cold)
            warms.append(warm)
        plain = time_plain_phash(paths[: args.baseline])

    cold, warm = min(colds, key=lambda t: t.wall), min(warms, key=lambda t: t.wall)
    rows = [
        ("cold scan (decode-validate + sha256 + pHash + stats + DB)", workers, cold, len(paths)),
        ("warm rescan (nothing changed)", workers, warm, len(paths)),
        ("plain loop imagehash.phash(Image.open(p))", 1, plain, min(args.baseline, len(paths))),
    ]
    print()
    print(f"| {'what':<58} | workers | images | wall s | images/s | CPU s | images/s if cores free |")
    print(f"|{'-' * 60}|---------|--------|--------|----------|-------|------------------------|")
    for name, used, timing, count in rows:
        free = count / timing.free_cores_seconds(used)
        print(f"| {name:<58} | {used:>7} | {count:>6} | {timing.wall:>6.2f} | {count / timing.wall:>8,.0f} "
              f"| {timing.cpu:>5.2f} | {free:>22,.0f} |")
    print(f"\nwarm rescan is {cold.wall / warm.wall:.1f}x faster than cold (wall clock, best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
