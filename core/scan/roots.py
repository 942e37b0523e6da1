"""Which folders the app's "scan a folder" form may scan: below configured roots, a large one only when confirmed.

The CLI scans whatever folder its user types; the app, which anyone who can open
its page may drive, scans only below the roots in LISTING_AUDIT_ROOTS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from core.files import is_inside

#: os.pathsep-separated folders below which the app may scan; unset or empty: the user's home and PROJECT_DATA.
ROOTS_ENV = "LISTING_AUDIT_ROOTS"
PROJECT_DATA = Path(__file__).resolve().parents[1] / "data"
#: A folder holding more files than this (all files, in all subfolders) is scanned only once the user confirms.
CONFIRM_ABOVE_FILES = 100_000


def allowed_roots(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The resolved folders below which the app may scan (see ROOTS_ENV)."""
    configured = [part for part in environ.get(ROOTS_ENV, "").split(os.pathsep) if part.strip()]
    roots = [Path(part.strip()) for part in configured] or [Path.home(), PROJECT_DATA]
    return [root.expanduser().resolve() for root in roots]


def is_below(folder: Path, roots: Sequence[Path]) -> bool:
    """Whether the resolved `folder` is one of `roots` (resolved) or inside one."""
    return any(is_inside(str(folder), str(root)) for root in roots)


def count_files(folder: Path, *, stop_after: int) -> int:
    """Files (anything but a folder) below `folder`, counted up to `stop_after` and no further.

    Links to folders are not followed; folders that cannot be listed count as empty.
    """
    count = 0
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                        continue
                    count += 1
                    if count >= stop_after:
                        return count
        except OSError:
            continue
    return count


def _folder_problem(folder: Path) -> Optional[str]:
    """Why the existing-or-not `folder` is not a dataset folder, or None."""
    if not folder.exists():
        return f"Folder not found: {folder}"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder."
    try:
        has_class_folder = any(
            entry.is_dir() and not entry.name.startswith((".", "__")) for entry in os.scandir(folder)
        )
    except PermissionError:
        return f"Permission denied reading {folder}."
    if not has_class_folder:
        return (f"{folder} has no subfolders. A dataset folder holds one subfolder per class, "
                "each with that class's images.")
    return None


@dataclass(frozen=True)
class ScanCheck:
    """What the app should do with a folder typed into its scan form.

    folder: the resolved folder (None when nothing was typed); problem: a one-line
    reason not to scan it, else None; confirm: a one-line question to ask before
    scanning it (more than CONFIRM_ABOVE_FILES files), else None.
    """

    folder: Optional[Path]
    problem: Optional[str] = None
    confirm: Optional[str] = None


def _resolved(raw_path: str) -> tuple[Optional[Path], Optional[str]]:
    """(the resolved folder, None), or (None, why the text is not a usable path) for a NUL byte or a name
    longer than the file system allows."""
    if "\x00" in raw_path:
        return None, "That path contains a NUL character; type the folder's path as it is on disk."
    try:
        return Path(raw_path.strip()).expanduser().resolve(), None
    except (OSError, RuntimeError) as error:  # ENAMETOOLONG, a symlink loop
        return None, f"That path cannot be used: {getattr(error, 'strerror', None) or error}."


def _enclosing_dataset(folder: Path, dataset_roots: Sequence[Path]) -> Optional[Path]:
    """The dataset folder (of `dataset_roots`) that strictly contains `folder`, if any."""
    for root in dataset_roots:
        if folder != root and is_inside(str(folder), str(root)):
            return root
    return None


def check_folder_to_scan(raw_path: str, roots: Optional[Sequence[Path]], *, confirmed: bool = False,
                         dataset_roots: Sequence[Path] = ()) -> ScanCheck:
    """Check a folder typed into the app before scanning it.

    roots: the folders it must be below (see allowed_roots), or None for a
    folder that is already a dataset (a rescan). Outside the roots the folder
    is refused before anything about it is looked up, so the form never tells
    whether a folder outside exists. A path that cannot be one (a NUL byte, a
    name over the file system's limit) is refused in one line. Unless
    `confirmed`, a folder below the roots asks for confirmation when it lies
    inside a dataset already scanned (`dataset_roots`: most likely one of its
    class folders, one level too deep) or holds more than CONFIRM_ABOVE_FILES
    files (counting stops at CONFIRM_ABOVE_FILES + 1).
    """
    if not raw_path.strip():
        return ScanCheck(None, problem="Enter the path of a dataset folder.")
    folder, unusable = _resolved(raw_path)
    if unusable:
        return ScanCheck(None, problem=unusable)
    if roots is not None and not is_below(folder, roots):
        shown = ", ".join(str(root) for root in roots)
        return ScanCheck(folder, problem=f"{folder} is outside the folders this app scans ({shown}); "
                                         f"set {ROOTS_ENV} to allow it, or scan it with the listing-audit CLI.")
    try:
        problem = _folder_problem(folder)
    except OSError as error:
        problem = f"{folder} cannot be read: {error.strerror or error}."
    if problem or confirmed or roots is None:
        return ScanCheck(folder, problem=problem)
    enclosing = _enclosing_dataset(folder, [Path(root) for root in dataset_roots])
    if enclosing is not None:
        return ScanCheck(folder, confirm=f"{folder} is inside the dataset {enclosing} (one of its class folders?). "
                                         "Scanning it makes a dataset of its own, with its subfolders as classes. "
                                         "Scan it anyway?")
    if count_files(folder, stop_after=CONFIRM_ABOVE_FILES + 1) > CONFIRM_ABOVE_FILES:
        return ScanCheck(folder, confirm=f"{folder} holds more than {CONFIRM_ABOVE_FILES:,} files; "
                                         "scanning it takes a long time. Scan it anyway?")
    return ScanCheck(folder)
