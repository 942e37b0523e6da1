"""Inspect many image files in parallel: decode-validate, sha256, pHash and statistics per file.

`inspect_files` fans files out to worker processes in chunks and reports progress
through a callback; results come back in input order. Workers die with the
process that started them, even when it is killed outright (kill -9). With
executor "ray" the chunks are Ray Data tasks on a cluster instead (core.executors).
"""
from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from core.executors import RayStage, cluster_cpus, map_batches_on_ray, object_column, resolve_executor
from core.files import MAX_IMAGE_FILE_BYTES, FileRefused, read_file_inside
from core.imaging import ImageInfo, inspect_image_bytes
from core.progress import ProgressCallback
from core.scan.walk import FileEntry

#: progress(fraction in [0, 1], message)

CHUNK_SIZE = 32  # files per task: small enough that the last tasks end together
#: Files per Ray task: each costs Ray a few milliseconds of its own (scheduling, the block's objects), so
#: larger ones than CHUNK_SIZE, but never fewer than RAY_BLOCKS_PER_CPU tasks per CPU of the cluster.
RAY_MAX_CHUNK_SIZE = 1024
RAY_BLOCKS_PER_CPU = 4
#: Below this many files the pool's start-up costs more than it saves.
MIN_FILES_FOR_POOL = 256
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
#: How often a worker without PR_SET_PDEATHSIG (not Linux) checks that its parent is alive, seconds.
_PARENT_POLL_S = 1.0


def inspect_file(root: str, entry: FileEntry) -> ImageInfo:
    """Inspect one file of the dataset at `root`. Never raises.

    Like the walk (core.scan.walk.discover), reading refuses a file that, links
    resolved, is outside `root`, is not a regular file, or is larger than
    MAX_IMAGE_FILE_BYTES: the file may have changed since it was listed.
    """
    if entry.stat_error:
        return ImageInfo(None, error=entry.stat_error)
    try:
        data = read_file_inside(root, entry.path, max_bytes=MAX_IMAGE_FILE_BYTES)
    except FileRefused as refused:
        return ImageInfo(None, error=str(refused))
    except OSError as error:
        return ImageInfo(None, error=f"cannot read file: {error.strerror or error}")
    return inspect_image_bytes(data)


def _inspect_chunk(root: str, entries: Sequence[FileEntry]) -> list[ImageInfo]:
    return [inspect_file(root, entry) for entry in entries]


def inspect_batch(batch: dict[str, np.ndarray], root: str) -> dict[str, np.ndarray]:
    """Ray Data batch function: columns index, path, label, size, mtime_ns and stat_error (FileEntry's
    fields; a missing stat_error may arrive as NaN) -> index and info (ImageInfo objects)."""
    entries = [
        FileEntry(path, label, int(size), int(mtime_ns), stat_error if isinstance(stat_error, str) else None)
        for path, label, size, mtime_ns, stat_error in zip(
            batch["path"], batch["label"], batch["size"], batch["mtime_ns"], batch["stat_error"])
    ]
    return {"index": batch["index"], "info": object_column(_inspect_chunk(root, entries))}


def _exit_when_parent_is_gone(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process that started it ends, however it ends.

    On Linux the kernel sends SIGKILL when the parent exits (PR_SET_PDEATHSIG;
    the pool is made, and its workers forked, by the thread that waits for its
    results, so that thread's exit is the parent's end). Elsewhere a thread polls
    the parent pid. A parent already gone before this ran (the worker was
    adopted) ends the worker at once.
    """
    if not _kill_me_when_parent_exits():
        threading.Thread(target=_exit_when_parent_is_gone, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _kill_me_when_parent_exits() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork on Linux, whatever Python's default (workers are this process's children, as _die_with_parent
    expects, and inherit its paused garbage collector); the platform's default elsewhere."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def inspect_files(
    root: str | os.PathLike,
    entries: Sequence[FileEntry],
    *,
    workers: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    executor: str = "local",
) -> list[ImageInfo]:
    """Inspect `entries` (relative to `root`) with `workers` processes (default: all cores), or with
    executor "ray" as Ray Data tasks (at most `workers` at a time; default: as many as the cluster runs),
    which read the files at the same `root` on the cluster's nodes. Raises core.executors.ExecutorError
    when Ray cannot be used.

    Returns one ImageInfo per entry, in the same order.
    """
    root = str(Path(root))
    total = len(entries)
    if resolve_executor(executor) == "ray" and total:
        return _inspect_on_ray(root, entries, workers, progress)
    workers = workers or default_workers()
    if workers == 1 or total == 0 or total < MIN_FILES_FOR_POOL:
        return _inspect_inline(root, entries, progress)
    chunks = [entries[i:i + CHUNK_SIZE] for i in range(0, total, CHUNK_SIZE)]
    results: list[Optional[list[ImageInfo]]] = [None] * len(chunks)
    done = 0
    pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_pool_context(),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
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


def _inspect_on_ray(root: str, entries: Sequence[FileEntry], workers: Optional[int],
                    progress: Optional[ProgressCallback]) -> list[ImageInfo]:
    stage = RayStage(inspect_batch, kwargs={"root": root}, tasks=workers)
    columns = map_batches_on_ray([asdict(entry) for entry in entries], [stage],
                                 batch_size=ray_chunk_size(len(entries), workers or cluster_cpus()),
                                 progress=progress)
    return list(columns["info"])


def ray_chunk_size(files: int, cpus: int) -> int:
    """Files per Ray task: as many as keep RAY_BLOCKS_PER_CPU tasks per CPU, within CHUNK_SIZE..RAY_MAX_CHUNK_SIZE
    (100,000 files on 2 CPUs: 1,024; on 128 CPUs: 196)."""
    even = math.ceil(files / (RAY_BLOCKS_PER_CPU * max(cpus, 1)))
    return max(CHUNK_SIZE, min(RAY_MAX_CHUNK_SIZE, even))
