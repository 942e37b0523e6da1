"""Export the cleaned dataset: plan which file goes where, then write it as copies, symlinks or a manifest only.

The export is in ImageFolder layout: a sample is written under its final class
(relabelled images move, keeping the rest of their path); deleted, unreadable
and missing samples are left out. `manifest.csv` lists every sample with its
fate and `summary.json` what changed. The source folder is only ever read, and
nothing is written outside the output folder: class names that are not safe as
folder names and output paths that would escape it are refused. An export is
written beside the output folder and moved in when complete; its marker file
lists what it wrote, which is all that a later `overwrite` removes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Optional

import pandas as pd

from core.csvsafe import frame_to_csv
from core.dataset import FileRefused, is_inside
from core.imaging import open_regular

EXPORT_MODES = ("copy", "symlink", "manifest")
MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "summary.json"
#: The exported listings: one row per exported image, `path` its path in the export.
LISTINGS_NAME = "listings.csv"
LISTING_COLUMNS = ["path", "listing_id", "price", "title"]
#: One row per sample: its source path, labels before and after review, what happened to it,
#: the reviewer of its latest decision, and where it lands in the export ('' when left out).
MANIFEST_COLUMNS = ["path", "original_label", "final_label", "decision", "reviewer", "output_path"]
#: decision values: unchanged (never reviewed), kept (reviewed, label unchanged), price_fixed (label unchanged,
#: a reviewer's price; listings.csv has it), relabelled (whatever its price), and the three reasons to leave a
#: sample out.
INCLUDED_DECISIONS = ("unchanged", "kept", "price_fixed", "relabelled")
EXCLUDED_DECISIONS = ("deleted", "broken", "missing")
#: What writing the files found, replacing the planned decision of a file it could not export: gone
#: since the scan, its bytes no longer those the scan hashed, or no longer a regular file inside the folder.
WRITE_FAILURES = ("vanished", "changed", "refused")
#: Device names Windows refuses as file names, with or without an extension.
_RESERVED_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)] + [f"lpt{i}" for i in range(1, 10)]
)
#: Longest file or folder name, in bytes of UTF-8 (ext4, XFS, APFS, NTFS: 255).
_MAX_NAME_BYTES = 255
#: Longest extension kept whole when a name is shortened.
_MAX_EXTENSION_BYTES = 16

ProgressCallback = Callable[[float, str], None]


class ExportError(ValueError):
    """The export cannot be made as asked; nothing was written."""


class UnsafeClassName(ExportError):
    """A class name that cannot safely be a folder name."""


def unsafe_name_reason(name: str) -> Optional[str]:
    """Why `name` is not safe as a class folder name, or None when it is."""
    if not isinstance(name, str) or name == "":
        return "empty"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        return "contains a control character (NUL, newline, ...)"
    if name.startswith(".") or name.startswith("__"):
        return "starts with '.' or '__' (a hidden or parent folder; scanners skip it)"
    if name != name.strip() or name.endswith("."):
        return "starts or ends with a space, or ends with a dot"
    if name.split(".")[0].lower() in _RESERVED_NAMES:
        return "a reserved device name on Windows"
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        return f"longer than {_MAX_NAME_BYTES} bytes"
    if ":" in name or any(character in name for character in '<>"|?*'):
        return "contains a character Windows forbids in file names (: < > \" | ? *)"
    return None


def check_class_names(names: Iterable[str]) -> None:
    """Raise UnsafeClassName naming every unsafe class and why."""
    problems = [f"{name!r}: {reason}" for name in sorted(set(names), key=repr)
                if (reason := unsafe_name_reason(name)) is not None]
    if problems:
        raise UnsafeClassName("class names not safe as folder names: " + "; ".join(problems))


def _check_relative_path(path: str) -> PurePosixPath:
    """`path` as a relative POSIX path with no '', '.', '..' or NUL parts; ExportError otherwise."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or "\x00" in path or not pure.parts or any(part in ("", ".", "..") for part in pure.parts):
        raise ExportError(f"unsafe sample path {path!r}: it must stay inside its class folder")
    return pure


@dataclass(frozen=True)
class ExportPlan:
    """manifest: MANIFEST_COLUMNS, one row per sample, sorted by path. summary: JSON-able counts.
    listings: what listings.csv gets (LISTING_COLUMNS and the extra columns the source had), one row per
    exported image; empty when the dataset has no listing data."""

    manifest: pd.DataFrame
    summary: dict
    listings: pd.DataFrame = field(default_factory=pd.DataFrame)
    content_hashes: dict[str, str] = field(default_factory=dict)  # source path -> sha256 hex the scan recorded

    def included(self) -> pd.DataFrame:
        return self.manifest[self.manifest["output_path"] != ""]


def _decision(row) -> str:
    if row.missing:
        return "missing"
    if not row.readable:
        return "broken"
    if row.deleted:
        return "deleted"
    if row.current_label != row.label:
        return "relabelled"
    if getattr(row, "price_fixed", False):
        return "price_fixed"
    return "kept" if row.last_action else "unchanged"


def plan_export(samples: pd.DataFrame) -> ExportPlan:
    """Decide where each sample goes.

    samples: one row per sample with columns path, label (folder class),
    current_label, deleted, readable, missing, last_action ('' when never
    decided on), reviewer and optionally price_fixed, as db.review.export_frame gives.
    A relabelled image keeps the part of its path below the class folder; when
    that name is taken in the new class, `__from_<old class>` (and a counter if
    needed) is added before the extension. Raises UnsafeClassName for an unsafe
    final class and ExportError for an unsafe path.
    """
    rows = samples.sort_values("path", kind="stable")
    decisions = [_decision(row) for row in rows.itertuples(index=False)]
    included = [decision in INCLUDED_DECISIONS for decision in decisions]
    check_class_names(rows.loc[included, "current_label"])
    taken: set[str] = set()
    outputs = [""] * len(rows)
    positions = [i for i, keep in enumerate(included) if keep]
    # Unmoved files keep their own path; moved ones take what is free after them.
    positions.sort(key=lambda i: decisions[i] == "relabelled")
    renamed = 0
    for i in positions:
        row = rows.iloc[i]
        parts = _check_relative_path(row["path"]).parts
        below_class = PurePosixPath(*parts[1:]) if len(parts) > 1 else PurePosixPath(parts[0])
        candidate = PurePosixPath(row["current_label"]) / below_class
        if candidate.as_posix().casefold() in taken:
            candidate = _free_name(candidate, row["label"], taken)
            renamed += 1
        taken.add(candidate.as_posix().casefold())
        outputs[i] = candidate.as_posix()
    manifest = pd.DataFrame({
        "path": rows["path"].to_numpy(),
        "original_label": rows["label"].to_numpy(),
        "final_label": rows["current_label"].to_numpy(),
        "decision": decisions,
        "reviewer": rows["reviewer"].fillna("").to_numpy(),
        "output_path": outputs,
    })
    listings = listings_table(rows, outputs) if _has_listings(rows) else pd.DataFrame()
    hashes = ({path: digest for path, digest in zip(rows["path"], rows["content_hash"]) if isinstance(digest, str)}
              if "content_hash" in rows.columns else {})
    return ExportPlan(manifest=manifest, summary=_summarise(manifest, renamed), listings=listings,
                      content_hashes=hashes)


def after_writing(plan: ExportPlan, failures: dict[str, str]) -> ExportPlan:
    """`plan` as it was written: each source path in `failures` (path -> one of WRITE_FAILURES) left out,
    with that decision, from the manifest, the listings and the counts."""
    if not failures:
        return plan
    manifest = plan.manifest.copy()
    failed = manifest["path"].isin(list(failures))
    dropped = set(manifest.loc[failed, "output_path"])
    manifest.loc[failed, "decision"] = manifest.loc[failed, "path"].map(failures)
    manifest.loc[failed, "output_path"] = ""
    listings = plan.listings[~plan.listings["path"].isin(dropped)] if len(plan.listings) else plan.listings
    return ExportPlan(manifest=manifest, summary=_summarise(manifest, plan.summary["renamed_to_avoid_clash"]),
                      listings=listings.reset_index(drop=True), content_hashes=plan.content_hashes)


def _has_listings(rows: pd.DataFrame) -> bool:
    columns = [column for column in ("listing_id", "price", "title", "listing_json") if column in rows.columns]
    return bool(columns) and bool(rows[columns].notna().any().any())


def listings_table(rows: pd.DataFrame, outputs: list[str]) -> pd.DataFrame:
    """listings.csv of the export: for each exported image (outputs[i] != "") its path in the export, its
    listing id, price and title, then the extra listings.csv columns the source had, in first-seen order."""
    exported = [i for i, output in enumerate(outputs) if output]
    chosen = rows.iloc[exported]
    table = pd.DataFrame({"path": [outputs[i] for i in exported]})
    for column in LISTING_COLUMNS[1:]:
        table[column] = chosen[column].to_numpy() if column in chosen.columns else None
    extras = [json.loads(text) if isinstance(text, str) and text else {}
              for text in (chosen["listing_json"] if "listing_json" in chosen.columns else [None] * len(chosen))]
    for name in dict.fromkeys(key for extra in extras for key in extra):
        if name not in table.columns:
            table[name] = [extra.get(name) for extra in extras]
    return table.sort_values("path", kind="stable").reset_index(drop=True)


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest start of `text` whose UTF-8 encoding fits in `max_bytes` bytes (no character is cut in half)."""
    return text.encode("utf-8")[:max(max_bytes, 0)].decode("utf-8", errors="ignore")


def _fitted_name(stem: str, tag: str, ending: str) -> str:
    """stem + tag + ending within _MAX_NAME_BYTES: the stem is shortened first (to one character at
    least), then the tag; `ending` (counter and extension) is always kept whole."""
    room = _MAX_NAME_BYTES - len(ending.encode("utf-8"))
    tag_bytes = len(tag.encode("utf-8"))
    stem = truncate_utf8(stem, max(room - tag_bytes, len(stem[:1].encode("utf-8"))))
    return stem + truncate_utf8(tag, room - len(stem.encode("utf-8"))) + ending


def _free_name(candidate: PurePosixPath, old_label: str, taken: set[str]) -> PurePosixPath:
    """`candidate` renamed `<stem>__from_<old label>[_<n>]<extension>`, the first such name not in `taken`.

    The name stays within _MAX_NAME_BYTES of UTF-8 (the file-name limit of common
    filesystems) by shortening the stem; an "extension" longer than
    _MAX_EXTENSION_BYTES is not one and counts as part of the stem.
    """
    stem, suffix = candidate.stem, candidate.suffix
    if len(suffix.encode("utf-8")) > _MAX_EXTENSION_BYTES:
        stem, suffix = candidate.name, ""
    for attempt in range(1, len(taken) + 2):
        counter = f"_{attempt}" if attempt > 1 else ""
        renamed = candidate.with_name(_fitted_name(stem, f"__from_{old_label}", counter + suffix))
        if renamed.as_posix().casefold() not in taken:
            return renamed
    raise AssertionError("unreachable: there are more candidate names than taken names")


def _summarise(manifest: pd.DataFrame, renamed: int) -> dict:
    decisions = Counter(manifest["decision"])
    moved = manifest[manifest["decision"] == "relabelled"]
    included = manifest[manifest["output_path"] != ""]
    present = manifest[manifest["decision"] != "missing"]
    return {
        "samples": int(len(manifest)),
        "exported": int(len(included)),
        "left_out": int(len(manifest) - len(included)),
        "decisions": {name: int(decisions.get(name, 0))
                      for name in INCLUDED_DECISIONS + EXCLUDED_DECISIONS + WRITE_FAILURES},
        "relabelled": [
            {"from": source, "to": target, "count": int(count)}
            for (source, target), count in moved.groupby(["original_label", "final_label"]).size().items()
        ],
        "renamed_to_avoid_clash": int(renamed),
        "classes_before": {k: int(v) for k, v in present["original_label"].value_counts().sort_index().items()},
        "classes_after": {k: int(v) for k, v in included["final_label"].value_counts().sort_index().items()},
    }


def manifest_csv(plan: ExportPlan) -> str:
    """The manifest as CSV text (what manifest.csv holds), text cells escaped against spreadsheet formulas."""
    return frame_to_csv(plan.manifest)


def format_summary(summary: dict) -> str:
    """A few human-readable lines about what an export changed."""
    decisions = summary["decisions"]
    lines = [
        f"{summary['exported']} of {summary['samples']} images exported; "
        f"{decisions['relabelled']} relabelled, "
        + (f"{decisions['price_fixed']} with a fixed price, " if decisions["price_fixed"] else "")
        + f"{decisions['deleted']} deleted, "
        f"{decisions['broken']} broken and {decisions['missing']} missing left out",
    ]
    lines += [f"  {item['from']} -> {item['to']}: {item['count']}" for item in summary["relabelled"]]
    since = [f"{decisions[name]} {text}" for name, text in (
        ("vanished", "gone from disk"), ("changed", "changed on disk (rescan to see them)"),
        ("refused", "no longer regular files inside the dataset folder")) if decisions.get(name)]
    if since:
        lines.append(f"  not exported, since the scan: {', '.join(since)}")
    if summary["renamed_to_avoid_clash"]:
        lines.append(f"  {summary['renamed_to_avoid_clash']} moved images renamed to avoid a name clash")
    return "\n".join(lines)


# --- writing ------------------------------------------------------------------------------------

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
    return [_check_relative_path(name).as_posix() for name in files]


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
    staging = target.parent / f".{truncate_utf8(target.name, _MAX_NAME_BYTES - 32)}.partial-{uuid.uuid4().hex[:12]}"
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


class ContentChanged(Exception):
    """The source file's bytes are no longer those the scan hashed."""


def _place(source: Path, destination: Path, mode: str, real_root: str, expected_hash: Optional[str]) -> None:
    """Copy or link `source` to `destination` after reading it: FileNotFoundError when the source is gone,
    FileRefused when, links resolved, it is not a regular file inside `real_root` (a link or a pipe swapped in
    after the scan), ContentChanged when its sha256 is no longer `expected_hash` (None: not checked)."""
    real = os.path.realpath(source)
    if not is_inside(real, real_root):
        raise FileRefused("link leads outside the dataset folder")
    try:
        with open_regular(real) as handle:
            data = handle.read()
    except IsADirectoryError as error:
        raise FileRefused("a folder, not a file") from error
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise FileRefused(str(error)) from error
    if expected_hash is not None and hashlib.sha256(data).hexdigest() != expected_hash:
        raise ContentChanged(str(source))
    if mode == "copy":
        destination.write_bytes(data)
        shutil.copystat(real, destination)
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
    real_root = os.path.realpath(source)
    included = plan.included()
    for number, (path, output) in enumerate(zip(included["path"], included["output_path"]), start=1):
        destination = staging / _check_relative_path(output)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            _place(source / path, destination, mode, real_root, plan.content_hashes.get(path))
        except FileNotFoundError:
            failures[path] = "vanished"
        except FileRefused:
            failures[path] = "refused"
        except ContentChanged:
            failures[path] = "changed"
        else:
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
