"""Write an export plan as copies, symlinks or a manifest only, never outside the output folder.

The source folder is only ever read. An export is written beside the output folder and moved in when complete;
its marker file lists what it wrote, which is all that a later `overwrite` removes. A file whose content no
longer matches the scan is left out and said so.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterable, Optional

from core.csvsafe import frame_to_csv
from core.export.plan import (EXPORT_MODES, LISTINGS_NAME, MANIFEST_NAME, MAX_NAME_BYTES, SUMMARY_NAME, ExportError,
                              ExportPlan, after_writing, check_relative_path, manifest_csv, truncate_utf8)
from core.files import ContentChanged, read_scanned
from core.progress import ProgressCallback

#: Written into every export: the files it wrote, so that --overwrite removes those and nothing else.
MARKER_NAME = ".listing-audit-export.json"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def previous_export_files(target: Path) -> Optional[list[str]]:
    """The files (relative POSIX paths) an earlier export wrote into `target`, read from its marker; None without one.

    ExportError when the marker cannot be read or names a path outside `target`.
    """
    marker = target / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ExportError(f"cannot read the export marker {marker} ({error}); clear the folder by hand") from error
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise ExportError(f"the export marker {marker} has no list of files; clear the folder by hand")
    return [check_relative_path(name).as_posix() for name in files]


def check_export_target(source_root: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool) -> None:
    """ExportError unless writing an export to `out` is allowed.

    `out` must not be the source folder, inside it, or contain it; it must be
    absent, an empty folder, or (with overwrite) a folder holding an earlier
    export of ours, recognised by its marker file. A non-empty folder without
    the marker is never written to: we cannot tell which of its files are ours.
    """
    source = Path(source_root).resolve()
    target = Path(out).resolve()
    if _inside(target, source):
        raise ExportError(f"--out {out} is inside the dataset folder {source}; the source is never written to")
    if _inside(source, target):
        raise ExportError(f"--out {out} contains the dataset folder {source}; choose a separate folder")
    if target.exists() and not target.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        if previous_export_files(target) is None:
            raise ExportError(f"--out {out} is not empty and holds no earlier export (no {MARKER_NAME}); "
                              f"choose a new or empty folder")
        if not overwrite:
            raise ExportError(f"--out {out} is not empty; pass --overwrite to replace the previous export there")


def planned_files(plan: ExportPlan, mode: str) -> list[str]:
    """Every file (relative POSIX path) an export of `plan` in `mode` writes, its marker aside."""
    images = [] if mode == "manifest" else plan.included()["output_path"].tolist()
    return [MANIFEST_NAME, SUMMARY_NAME, *([LISTINGS_NAME] if len(plan.listings) else []), *images]


def _check_replaces_only_ours(target: Path, planned: list[str], previous: list[str]) -> None:
    """ExportError when writing `planned` into `target` would replace a file that the earlier export
    (`previous`) did not write, or write through a symlinked folder out of `target`."""
    ours = set(previous)
    for relative in planned:
        path = target / relative
        if not _inside(path.parent.resolve(), target):
            raise ExportError(f"{relative} would be written outside {target} (through a symlink)")
        if relative not in ours and (path.exists() or path.is_symlink()):
            raise ExportError(f"--out {target} holds {relative}, which no earlier export wrote and this one "
                              f"would replace; move it away or choose another folder")


def _staging_folder(target: Path) -> Path:
    """A new empty folder beside `target`, on the same filesystem, so the finished export moves in by renaming."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{truncate_utf8(target.name, MAX_NAME_BYTES - 32)}.partial-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging


def _write_marker(folder: Path, files: Iterable[str]) -> None:
    temporary = folder / f"{MARKER_NAME}.tmp"
    temporary.write_text(json.dumps({"written_by": "listing-audit export", "files": sorted(set(files))}, indent=1),
                         encoding="utf-8")
    os.replace(temporary, folder / MARKER_NAME)


def _remove_previous_export(target: Path, files: list[str]) -> None:
    """Delete `files` (what an earlier export wrote, from its marker) and the folders they leave empty; nothing else."""
    emptied: set[Path] = set()
    for relative in files:
        path = target / relative
        if _inside(path.parent.resolve(), target) and (path.is_symlink() or path.is_file()):
            path.unlink()
            emptied.update(folder for folder in path.parents if folder != target and _inside(folder, target))
    for folder in sorted(emptied, key=lambda folder: len(folder.parts), reverse=True):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()


def _move_into_place(staging: Path, target: Path, files: list[str], previous: list[str]) -> None:
    """Make the finished export in `staging` the content of `target`.

    An absent or empty `target` is replaced by `staging` in one rename. Otherwise
    the earlier export's files are removed and the new ones renamed in; the
    marker in `target` lists both exports' files until the new marker replaces
    it, so an interruption never leaves a file of ours unlisted.
    """
    if not target.exists() or not any(target.iterdir()):
        os.replace(staging, target)
        return
    _write_marker(target, [*previous, *files])
    _remove_previous_export(target, previous)
    for relative in files:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / relative, destination)
    os.replace(staging / MARKER_NAME, target / MARKER_NAME)


def _place(source: Path, data: bytes, destination: Path, mode: str) -> None:
    """Write `data`, the bytes just read from `source`, to `destination` ("copy"), or link it to `source`."""
    if mode == "copy":
        destination.write_bytes(data)
        shutil.copystat(os.path.realpath(source), destination)
    else:
        destination.symlink_to(source)


def _write_images(plan: ExportPlan, source: Path, staging: Path, mode: str,
                  report: ProgressCallback) -> tuple[list[str], dict[str, str]]:
    """Write the planned images into `staging`; returns (output paths written, source path -> WRITE_FAILURES
    reason of each one that could not be)."""
    images: list[str] = []
    failures: dict[str, str] = {}
    if mode == "manifest":
        return images, failures
    included = plan.included()
    for number, (path, output) in enumerate(zip(included["path"], included["output_path"]), start=1):
        destination = staging / check_relative_path(output)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:  # read even for a link: only a file still as the scan saw it is exported
            data = read_scanned(source / path, root=source, content_hash=plan.content_hashes.get(path))
        except FileNotFoundError:
            failures[path] = "vanished"
        except ContentChanged:
            failures[path] = "changed"
        except OSError:  # core.files.FileRefused: a link out of the folder, a pipe, a folder
            failures[path] = "refused"
        else:
            _place(source / path, data, destination, mode)
            images.append(output)
        if number % 200 == 0:
            report(number / len(included), f"{number} of {len(included)} images")
    return images, failures


def _write_tables(plan: ExportPlan, staging: Path) -> None:
    (staging / MANIFEST_NAME).write_text(manifest_csv(plan), encoding="utf-8")
    if len(plan.listings):
        (staging / LISTINGS_NAME).write_text(frame_to_csv(plan.listings), encoding="utf-8")


def write_export(
    plan: ExportPlan,
    *,
    source_root: str | os.PathLike,
    out: str | os.PathLike,
    mode: str = "copy",
    overwrite: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> dict:
    """Write the planned export to `out`; returns the plan's summary plus out, mode and files written.

    mode: copy (file copies, timestamps kept), symlink (absolute links to the
    source files) or manifest (no image files). The export is written into a
    temporary folder beside `out` and moved into place only when complete, so a
    failure (ExportError) leaves `out` as it was. With overwrite, an earlier
    export in `out` is replaced: only the files its marker lists are removed,
    other files are left alone, and a file the new export would replace that
    the earlier one did not write is refused. Every file is read before it is
    written: one that vanished since the scan is reported under `failed`, one whose
    bytes are not those the scan hashed under `changed` (not exported: rescan to
    see what it is now), one that, links resolved, is no longer a regular file
    inside the dataset folder under `refused_outside`; the manifest, listings.csv
    and the counts say the same (decisions vanished, changed, refused).
    """
    if mode not in EXPORT_MODES:
        raise ExportError(f"unknown export mode {mode!r}; modes are: {', '.join(EXPORT_MODES)}")
    check_export_target(source_root, out, overwrite=overwrite)
    source = Path(source_root).resolve()
    target = Path(out).resolve()
    previous = (previous_export_files(target) or []) if target.is_dir() else []
    if previous:
        _check_replaces_only_ours(target, planned_files(plan, mode), previous)
    report = progress or (lambda fraction, message: None)
    staging = None
    try:
        staging = _staging_folder(target)
        images, failures = _write_images(plan, source, staging, mode, report)
        written = after_writing(plan, failures)
        _write_tables(written, staging)
        summary = {**written.summary, "out": str(target), "mode": mode, "files_written": len(images),
                   "failed": sorted(p for p, why in failures.items() if why == "vanished"),
                   "changed": sorted(p for p, why in failures.items() if why == "changed"),
                   "refused_outside": sorted(p for p, why in failures.items() if why == "refused")}
        (staging / SUMMARY_NAME).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        files = [MANIFEST_NAME, SUMMARY_NAME, *([LISTINGS_NAME] if len(written.listings) else []), *images]
        _write_marker(staging, files)
        _move_into_place(staging, target, files, previous)
    except OSError as error:
        raise ExportError(f"the export to {out} failed: {error}") from error
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    report(1.0, f"exported {summary['files_written']} images")
    return summary
