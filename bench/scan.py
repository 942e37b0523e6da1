"""Scan throughput: cold scan, warm rescan and a plain one-core imagehash loop, on generated JPEGs.

Usage: python bench/scan.py [--images 4000] [--size 320] [--workers N] [--repeat 1]

"Cold" means an empty database (every file is decoded, validated, hashed); the
files themselves are in the OS page cache because they were just written, as
they are on a second scan of a real dataset. "Warm" rescans the same folder:
unchanged files (same size and mtime) are skipped.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import imagehash
import numpy as np
import PIL
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.scan import default_workers  # noqa: E402
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


def time_scan(db_path: Path, root: Path, workers: int) -> tuple[float, dict]:
    engine = make_engine(db_path)
    try:
        started = time.perf_counter()
        summary = scan_dataset(make_session_factory(engine), root, workers=workers)
        return time.perf_counter() - started, summary
    finally:
        engine.dispose()


def time_plain_phash(paths: list[Path]) -> float:
    """Seconds for `imagehash.phash(Image.open(p))` over `paths` on one core."""
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            imagehash.phash(image)
    return time.perf_counter() - started


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

        cold_best, warm_best = float("inf"), float("inf")
        for round_index in range(args.repeat):
            db_path = Path(tmp) / f"bench-{round_index}.db"
            cold, summary = time_scan(db_path, root, workers)
            assert summary["images"] == len(paths) and not summary["unreadable"], summary
            warm, summary = time_scan(db_path, root, workers)
            assert summary["unchanged"] == len(paths), summary
            print(f"round {round_index + 1}: cold {len(paths) / cold:,.0f} images/s, warm {len(paths) / warm:,.0f} images/s")
            cold_best, warm_best = min(cold_best, cold), min(warm_best, warm)

        subset = paths[: args.baseline]
        plain = time_plain_phash(subset)

    rows = [
        ("cold scan (decode-validate + sha256 + pHash + stats + DB)", workers, cold_best, len(paths)),
        ("warm rescan (nothing changed)", workers, warm_best, len(paths)),
        ("plain loop imagehash.phash(Image.open(p))", 1, plain, len(subset)),
    ]
    print()
    print(f"| {'what':<58} | workers | images | seconds | images/s |")
    print(f"|{'-' * 60}|---------|--------|---------|----------|")
    for name, used, seconds, count in rows:
        print(f"| {name:<58} | {used:>7} | {count:>6} | {seconds:>7.2f} | {count / seconds:>8,.0f} |")
    print(f"\nwarm rescan is {cold_best / warm_best:.1f}x faster than cold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
