"""The one way every reader opens a dataset's file: inside the dataset folder, a regular file, bounded, and,
where the scan recorded a content hash, still the file the scan saw.

The scan, thumbnails, embeddings, training and export all read through `read_file_inside` or
`read_scanned`, so a link, a pipe or a different picture put in a file's place after the scan fails its
reader at once, with a one-line reason, instead of hanging it, reading outside the folder, or training
and caching the new picture under the old one's hash and label.
"""
from __future__ import annotations

import errno
import hashlib
import os
from stat import S_ISREG
from typing import BinaryIO, Optional

#: A larger file is not read (a listing photo is a few MB; the bytes stay in a worker's memory while decoded).
MAX_IMAGE_FILE_BYTES = 128 * 2**20


class FileRefused(OSError):
    """A file that is not read (outside the dataset folder, not a regular file, too large).

    str(error) is a one-line reason. An OSError, so a reader that catches OSError for a file that cannot be
    read catches this too.
    """


class NotARegularFile(OSError):
    """A dataset path that is no longer a regular file (a pipe, socket or device swapped in since the scan)."""


class ContentChanged(OSError):
    """A dataset file whose bytes are no longer those the scan hashed: edited or replaced since the scan."""


#: What a reader says of a file that ContentChanged: the user's way out is a rescan.
CHANGED_SINCE_SCAN = "changed since the scan (rescan the dataset)"


def is_inside(real_path: str, real_root: str) -> bool:
    """Whether `real_path` is `real_root` or below it (both already resolved, absolute)."""
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """`path` opened for reading, never blocking: NotARegularFile (an OSError) unless it is a regular file, so
    a FIFO put where an image was after the scan fails its reader at once instead of hanging it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not S_ISREG(os.fstat(descriptor).st_mode):
            raise NotARegularFile(errno.EINVAL, "not a regular file (a pipe, socket or device)", str(path))
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def read_file_inside(root: str | os.PathLike, relative: str | os.PathLike, *, max_bytes: int) -> bytes:
    """The bytes of `root/relative`, read only if, links resolved, it is a regular file inside `root`.

    relative: a path below root (an absolute path is taken as it is, and must resolve inside root too).
    Raises FileRefused (outside the root, not a regular file, more than max_bytes) or OSError (cannot be
    opened or read). The resolved path is opened without following a link and without blocking, so a
    file swapped for a link or a pipe after the check is refused too.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    if not is_inside(real, real_root):
        raise FileRefused("link leads outside the dataset folder; not read")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(real, flags)
    with os.fdopen(descriptor, "rb") as handle:
        stat = os.fstat(descriptor)
        if not S_ISREG(stat.st_mode):
            raise FileRefused("not a regular file (a pipe, socket or device)")
        # Asking for the file's size, not max_bytes, spares allocating (and freeing) a max_bytes buffer per
        # file: half the cost of reading a small photo. A file that grew since fstat is read on to the limit.
        data = handle.read(stat.st_size + 1) if stat.st_size <= max_bytes else b""
        if len(data) > stat.st_size:
            data += handle.read(max_bytes + 1 - len(data))
        if stat.st_size > max_bytes or len(data) > max_bytes:  # the second: it grew since fstat
            raise FileRefused(f"file too large to read: more than the {max_bytes / 2**20:,.0f} MiB "
                              f"the scan reads ({max(stat.st_size, len(data)) / 2**20:,.0f} MiB)")
        return data


def read_scanned(path: str | os.PathLike, *, root: Optional[str | os.PathLike] = None,
                 content_hash: Optional[str] = None) -> bytes:
    """The bytes of the dataset file at `path` as the scan saw them; every error an OSError.

    root: the dataset folder; given, `path` (absolute, or relative to root) must resolve inside it
    (`read_file_inside`: FileRefused otherwise). content_hash: the sha256 hex the scan recorded; given,
    ContentChanged unless the bytes still hash to it. Without either, `path` is only opened as a regular
    file (NotARegularFile otherwise). Never more than MAX_IMAGE_FILE_BYTES is read.
    """
    if root is None:
        with open_regular(path) as handle:
            data = handle.read(MAX_IMAGE_FILE_BYTES + 1)
        if len(data) > MAX_IMAGE_FILE_BYTES:
            raise FileRefused(f"file too large to read: more than {MAX_IMAGE_FILE_BYTES / 2**20:,.0f} MiB")
    else:
        data = read_file_inside(root, path, max_bytes=MAX_IMAGE_FILE_BYTES)
    if content_hash is not None and hashlib.sha256(data).hexdigest() != content_hash:
        raise ContentChanged(errno.ESTALE, CHANGED_SINCE_SCAN, str(path))
    return data
