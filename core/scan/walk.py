"""Find the images and classes of a dataset folder.

`discover(root)` walks the class folders (never following a link out of the folder, never reading a special
file), and says in one line per reason which files it skipped; core.files reads the files it found.
"""
from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Optional

from core.files import is_inside
from core.imaging import IMAGE_EXTENSIONS, UNSUPPORTED_IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

#: Why a file or folder was left out of a scan: DatasetFiles.skipped keys.
OUTSIDE_ROOT = "outside_root"
NOT_IN_CLASS_FOLDER = "not_in_class_folder"
UNSUPPORTED_FORMAT = "unsupported_format"
LINK_TO_CLASS = "link_to_class_folder"
#: How many example paths a skipped-files warning names.
SKIPPED_EXAMPLES = 3


@dataclass(frozen=True)
class FileEntry:
    """One image file found under a class folder.

    path: POSIX path relative to the dataset root; label: its top-level folder;
    size in bytes and mtime in ns (0 when stat failed); stat_error: why the file
    cannot be read at all (broken symlink, symlink loop, permission), else None.
    """

    path: str
    label: str
    size: int
    mtime_ns: int
    stat_error: Optional[str] = None


@dataclass
class DatasetFiles:
    """What walking a dataset root found. classes is sorted; empty_classes have no images.

    skipped: reason (OUTSIDE_ROOT, NOT_IN_CLASS_FOLDER, UNSUPPORTED_FORMAT) -> sorted
    relative paths left out for it; only reasons that occurred are keys.
    """

    root: Path
    classes: list[str]
    files: list[FileEntry]
    empty_classes: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _stat_error(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if error.errno == errno.ENOENT:
        return "broken symlink: target does not exist"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot stat: {error.strerror or error}"


def _display_path(relative: str) -> str:
    """`relative` as storable text: bytes that are not UTF-8 (surrogate-escaped by os) shown as \\xNN."""
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _file_entry(entry: os.DirEntry, relative: str, label: str) -> FileEntry:
    shown = _display_path(relative)
    if shown != relative:
        return FileEntry(shown, label, 0, 0, "file or folder name is not valid UTF-8; rename it to scan it")
    try:
        stat = entry.stat()
    except OSError as error:
        return FileEntry(relative, label, 0, 0, _stat_error(error))
    if not S_ISREG(stat.st_mode):  # reading a FIFO or a device would block or never end
        return FileEntry(relative, label, 0, 0, "not a regular file (a pipe, socket or device)")
    return FileEntry(relative, label, stat.st_size, stat.st_mtime_ns)


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _is_image_name(name: str) -> bool:
    return not _is_hidden(name) and _extension(name) in IMAGE_EXTENSIONS


def _is_unsupported_image_name(name: str) -> bool:
    return not _is_hidden(name) and _extension(name) in UNSUPPORTED_IMAGE_EXTENSIONS


def _leads_outside(entry: os.DirEntry, real_root: str) -> bool:
    """Whether `entry` is a link whose target, all links resolved, is outside the root."""
    try:
        if not entry.is_symlink():
            return False  # a plain entry of a folder inside the root is inside it
    except OSError:
        return False
    return not is_inside(os.path.realpath(entry.path), real_root)


def _directory_key(entry: os.DirEntry) -> Optional[tuple[int, int]]:
    """(device, inode) of the folder `entry` names, following symlinks; None when it is not a folder."""
    try:
        if not entry.is_dir(follow_symlinks=True):
            return None
        stat = entry.stat(follow_symlinks=True)
    except OSError:  # a symlink loop or a vanished entry is not a folder
        return None
    return stat.st_dev, stat.st_ino


class _Walk:
    """State of one walk of a dataset root: the folders claimed so far and what was skipped, and why.

    seen_dirs holds the folders already claimed (the root and every class
    folder from the start): a folder is listed at most once, so symlink loops
    end and a link to another class folder does not pull its images in.
    """

    def __init__(self, root: Path):
        self.root = root
        self.real_root = str(root)  # discover() resolved it
        root_stat = root.stat()
        self.seen_dirs = {(root_stat.st_dev, root_stat.st_ino)}
        self.skipped: dict[str, list[str]] = {}

    def skip(self, reason: str, relative: str) -> None:
        """Record that `relative` was left out for `reason` (a DatasetFiles.skipped key)."""
        self.skipped.setdefault(reason, []).append(_display_path(relative))

    def _skip_if_wanted(self, link: os.DirEntry, relative: str) -> None:
        """Report a link leading outside the root when the scan would have used it: a folder or an image."""
        if _directory_key(link) is not None or _is_image_name(link.name) or _is_unsupported_image_name(link.name):
            self.skip(OUTSIDE_ROOT, relative)

    def class_folders(self) -> list[str]:
        """The root's class folder names, sorted; loose images and links leading out are skipped.

        Real folders are taken before links, so a link to a class folder (`a-bags -> bag`) never takes
        that class's place, whatever the names' order; it is skipped and reported.
        """
        with os.scandir(self.root) as listing:
            entries = sorted(listing, key=lambda entry: (entry.is_symlink(), entry.name))
        folders = []
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            if _leads_outside(entry, self.real_root):
                self._skip_if_wanted(entry, entry.name)
                continue
            key = _directory_key(entry)
            if key is None:
                if _is_image_name(entry.name) or _is_unsupported_image_name(entry.name):
                    self.skip(NOT_IN_CLASS_FOLDER, entry.name)
            elif key in self.seen_dirs:  # a link to another class folder is not a class
                self.skip(LINK_TO_CLASS, entry.name)
            else:
                self.seen_dirs.add(key)
                folders.append(entry.name)
        return sorted(folders)

    def class_files(self, folder: str, label: str) -> list[FileEntry]:
        """All image files below one class folder, following links that stay inside the root."""
        entries = []
        pending = [folder]  # folders to list, relative to root
        while pending:
            relative_dir = pending.pop()
            try:
                with os.scandir(self.root / relative_dir) as listing:
                    children = list(listing)
            except OSError as error:
                log.warning("cannot list folder %s: %s", relative_dir, error.strerror or error)
                continue
            for child in children:
                if _is_hidden(child.name):
                    continue
                relative = f"{relative_dir}/{child.name}"
                if _leads_outside(child, self.real_root):
                    self._skip_if_wanted(child, relative)
                    continue
                key = _directory_key(child)
                if key is not None:
                    if key not in self.seen_dirs:
                        self.seen_dirs.add(key)
                        pending.append(relative)
                elif _is_image_name(child.name):
                    entries.append(_file_entry(child, relative, label))
                elif _is_unsupported_image_name(child.name):
                    self.skip(UNSUPPORTED_FORMAT, relative)
        return entries


def discover(root: str | os.PathLike) -> DatasetFiles:
    """Walk a dataset root: classes are its non-hidden subfolders, images any file with an image extension.

    Links are followed while their resolved target stays inside the (resolved)
    root; links leading out are skipped (DatasetFiles.skipped), never read.
    """
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise NotADirectoryError(f"dataset folder does not exist or is not a folder: {root_path}")
    walk = _Walk(root_path)
    files: list[FileEntry] = []
    classes, empty = [], []
    for folder in walk.class_folders():
        label = _display_path(folder)
        class_files = sorted(walk.class_files(folder, label), key=lambda entry: entry.path)
        if not class_files:
            empty.append(label)
        classes.append(label)
        files.extend(class_files)
    skipped = {reason: sorted(paths) for reason, paths in walk.skipped.items()}
    return DatasetFiles(root=root_path, classes=sorted(classes), files=files, empty_classes=empty, skipped=skipped)


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """`text` with control characters (newlines included) shown as \\xNN, so that it prints on one line."""
    return _CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def some_paths(paths: list[str]) -> str:
    shown = ", ".join(one_line(path) for path in paths[:SKIPPED_EXAMPLES])
    return shown + (f" and {len(paths) - SKIPPED_EXAMPLES:,} more" if len(paths) > SKIPPED_EXAMPLES else "")


def _formats_of(paths: list[str]) -> str:
    return ", ".join(sorted({_extension(path).lstrip(".").upper() for path in paths}))


def skipped_warnings(skipped: dict[str, list[str]]) -> list[str]:
    """One line per reason in DatasetFiles.skipped: how many were left out, why, and a few of their paths."""
    lines = []
    outside = skipped.get(OUTSIDE_ROOT, [])
    if outside:
        lines.append(f"{_count(len(outside), 'link')} {'leads' if len(outside) == 1 else 'lead'} outside the "
                     f"dataset folder and {'was' if len(outside) == 1 else 'were'} not read: {some_paths(outside)}")
    loose = skipped.get(NOT_IN_CLASS_FOLDER, [])
    if loose:
        lines.append(f"{_count(len(loose), 'image')} {'is' if len(loose) == 1 else 'are'} in the dataset folder "
                     f"itself, not in a class folder, so not scanned: {some_paths(loose)}")
    linked = skipped.get(LINK_TO_CLASS, [])
    if linked:
        lines.append(f"{_count(len(linked), 'link')} to a class folder already scanned {'was' if len(linked) == 1 else 'were'} "
                     f"not taken as a class of {'its' if len(linked) == 1 else 'their'} own: {some_paths(linked)}")
    unsupported = skipped.get(UNSUPPORTED_FORMAT, [])
    if unsupported:
        lines.append(f"{_count(len(unsupported), 'image')} in a format the scan cannot decode "
                     f"({_formats_of(unsupported)}), so not scanned: {some_paths(unsupported)}")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
