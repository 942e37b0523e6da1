"""Inspect many image files in parallel: decode-validate, sha256, pHash and statistics per file.

`inspect_files` fans files out to worker processes in chunks and reports progress
through a callback; results come back in input order.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Optional, Sequence

from core.dataset import FileEntry
from core.imaging import ImageInfo, inspect_image_bytes

#: progress(fraction in [0, 1], message)
ProgressCallback = Callable[[float, str], None]

CHUNK_SIZE = 32  # files per task: small enough that the last tasks end together
#: Below this many files the pool's start-up costs more than it saves.
MIN_FILES_FOR_POOL = 256


def inspect_file(root: str, entry: FileEntry) -> ImageInfo:
    """Inspect one file of the dataset at `root`. Never raises."""
    if entry.stat_error:
        return ImageInfo(None, error=entry.stat_error)
    try:
        with open(os.path.join(root, entry.path), "rb") as handle:
            data = handle.read()
    except OSError as error:
        return ImageInfo(None, error=f"cannot read file: {error.strerror or error}")
    return inspect_image_bytes(data)


def _inspect_chunk(root: str, entries: Sequence[FileEntry]) -> list[ImageInfo]:
    return [inspect_file(root, entry) for entry in entries]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def inspect_files(
    root: str | os.PathLike,
    entries: Sequence[FileEntry],
    *,
    workers: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
) -> list[ImageInfo]:
    """Inspect `entries` (relative to `root`) with `workers` processes (default: all cores).

    Returns one ImageInfo per entry, in the same order.
    """
    root = str(Path(root))
    total = len(entries)
    workers = workers or default_workers()
    if workers == 1 or total == 0 or total < MIN_FILES_FOR_POOL:
        return _inspect_inline(root, entries, progress)
    chunks = [entries[i:i + CHUNK_SIZE] for i in range(0, total, CHUNK_SIZE)]
    results: list[Optional[list[ImageInfo]]] = [None] * len(chunks)
    done = 0
    pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)))
    try:
        futures = {pool.submit(_inspect_chunk, root, chunk): index for index, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            index = futures[future]
            results[index] = future.result()
            done += len(chunks[index])
            if progress:
                progress(done / total, f"{done}/{total} images")
    finally:
        # On an exception (a cancelled job raises from `progress`) drop the chunks not started yet.
        pool.shutdown(wait=True, cancel_futures=True)
    return [info for chunk in results for info in chunk]


def _inspect_inline(root: str, entries: Sequence[FileEntry], progress: Optional[ProgressCallback]) -> list[ImageInfo]:
    results = []
    for done, entry in enumerate(entries, start=1):
        results.append(inspect_file(root, entry))
        if progress and (done % 16 == 0 or done == len(entries)):
            progress(done / len(entries), f"{done}/{len(entries)} images")
    return results
