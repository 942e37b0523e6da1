"""Export the cleaned dataset: plan which file goes where, then write it as copies, symlinks or a manifest only.

The export is in ImageFolder layout: a sample is written under its final class
(relabelled images move, keeping the rest of their path); deleted, unreadable
and missing samples are left out. `manifest.csv` lists every sample with its
fate and `summary.json` what changed. The source folder is only ever read, and
nothing is written outside the output folder: class names that are not safe as
folder names and output paths that would escape it are refused.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Optional

import pandas as pd

EXPORT_MODES = ("copy", "symlink", "manifest")
MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "summary.json"
#: One row per sample: its source path, labels before and after review, what happened to it,
#: the reviewer of its latest decision, and where it lands in the export ('' when left out).
MANIFEST_COLUMNS = ["path", "original_label", "final_label", "decision", "reviewer", "output_path"]
#: decision values: unchanged (never reviewed), kept (reviewed, label unchanged), relabelled,
#: and the three reasons to leave a sample out.
INCLUDED_DECISIONS = ("unchanged", "kept", "relabelled")
EXCLUDED_DECISIONS = ("deleted", "broken", "missing")
#: Device names Windows refuses as file names, with or without an extension.
_RESERVED_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)] + [f"lpt{i}" for i in range(1, 10)]
)
_MAX_NAME_BYTES = 255

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
    """manifest: MANIFEST_COLUMNS, one row per sample, sorted by path. summary: JSON-able counts."""

    manifest: pd.DataFrame
    summary: dict

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
    return "kept" if row.last_action else "unchanged"


def plan_export(samples: pd.DataFrame) -> ExportPlan:
    """Decide where each sample goes.

    samples: one row per sample with columns path, label (folder class),
    current_label, deleted, readable, missing, last_action ('' when never
    decided on) and reviewer, as db.review.export_frame gives.
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
    return ExportPlan(manifest=manifest, summary=_summarise(manifest, renamed))


def _free_name(candidate: PurePosixPath, old_label: str, taken: set[str]) -> PurePosixPath:
    stem, suffix = candidate.stem, candidate.suffix
    for attempt in range(1, len(taken) + 2):
        tag = f"__from_{old_label}" + (f"_{attempt}" if attempt > 1 else "")
        renamed = candidate.with_name(f"{stem}{tag}{suffix}")
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
        "decisions": {name: int(decisions.get(name, 0)) for name in INCLUDED_DECISIONS + EXCLUDED_DECISIONS},
        "relabelled": [
            {"from": source, "to": target, "count": int(count)}
            for (source, target), count in moved.groupby(["original_label", "final_label"]).size().items()
        ],
        "renamed_to_avoid_clash": int(renamed),
        "classes_before": {k: int(v) for k, v in present["original_label"].value_counts().sort_index().items()},
        "classes_after": {k: int(v) for k, v in included["final_label"].value_counts().sort_index().items()},
    }


def manifest_csv(plan: ExportPlan) -> str:
    """The manifest as CSV text (what manifest.csv holds)."""
    return plan.manifest.to_csv(index=False, lineterminator="\n")


def format_summary(summary: dict) -> str:
    """A few human-readable lines about what an export changed."""
    decisions = summary["decisions"]
    lines = [
        f"{summary['exported']} of {summary['samples']} images exported; "
        f"{decisions['relabelled']} relabelled, {decisions['deleted']} deleted, "
        f"{decisions['broken']} broken and {decisions['missing']} missing left out",
    ]
    lines += [f"  {item['from']} -> {item['to']}: {item['count']}" for item in summary["relabelled"]]
    if summary["renamed_to_avoid_clash"]:
        lines.append(f"  {summary['renamed_to_avoid_clash']} moved images renamed to avoid a name clash")
    return "\n".join(lines)


# --- writing ------------------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_export_target(source_root: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool) -> None:
    """ExportError unless writing an export to `out` is allowed.

    `out` must not be the source folder, inside it, or contain it; it must be
    absent, an empty folder, or (with overwrite) a non-empty folder.
    """
    source = Path(source_root).resolve()
    target = Path(out).resolve()
    if _inside(target, source):
        raise ExportError(f"--out {out} is inside the dataset folder {source}; the source is never written to")
    if _inside(source, target):
        raise ExportError(f"--out {out} contains the dataset folder {source}; choose a separate folder")
    if target.exists() and not target.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ExportError(f"--out {out} is not empty; pass --overwrite to replace a previous export there")


def _remove_previous_export(target: Path) -> int:
    """Delete the files a previous export listed in its manifest, the manifest, the summary and empty folders.

    Other files in `target` are left alone. Returns how many files were removed.
    """
    manifest = target / MANIFEST_NAME
    removed = 0
    if manifest.is_file():
        with manifest.open(newline="", encoding="utf-8") as stream:
            outputs = [row.get("output_path") or "" for row in csv.DictReader(stream)]
        for output in outputs:
            if not output:
                continue
            path = target / _check_relative_path(output)
            if _inside(path.parent.resolve(), target) and (path.is_symlink() or path.is_file()):
                path.unlink()
                removed += 1
    for name in (MANIFEST_NAME, SUMMARY_NAME):
        if (target / name).is_file():
            (target / name).unlink()
    for folder in sorted((p for p in target.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def _place(source: Path, destination: Path, mode: str) -> None:
    """Copy or link `source` to `destination`, replacing what is there; FileNotFoundError when the source is gone."""
    if not source.is_file():
        raise FileNotFoundError(source)
    if destination.is_symlink() or destination.exists():
        destination.unlink()
    if mode == "copy":
        shutil.copy2(source, destination)
    else:
        destination.symlink_to(source)


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
    source files) or manifest (no image files). manifest.csv is written first,
    so an interrupted export can be cleared with overwrite; summary.json last.
    A source file that vanished since the scan is reported under `failed`.
    """
    if mode not in EXPORT_MODES:
        raise ExportError(f"unknown export mode {mode!r}; modes are: {', '.join(EXPORT_MODES)}")
    check_export_target(source_root, out, overwrite=overwrite)
    source = Path(source_root).resolve()
    target = Path(out).resolve()
    target.mkdir(parents=True, exist_ok=True)
    _remove_previous_export(target)
    (target / MANIFEST_NAME).write_text(manifest_csv(plan), encoding="utf-8")
    included = plan.included()
    written, failed = 0, []
    report = progress or (lambda fraction, message: None)
    if mode != "manifest":
        for number, (path, output) in enumerate(zip(included["path"], included["output_path"]), start=1):
            destination = target / _check_relative_path(output)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not _inside(destination.parent.resolve(), target):
                raise ExportError(f"{output} would be written outside {target} (through a symlink)")
            try:
                _place(source / path, destination, mode)
            except FileNotFoundError:
                failed.append(path)
            else:
                written += 1
            if number % 200 == 0:
                report(number / len(included), f"{number} of {len(included)} images")
    summary = {**plan.summary, "out": str(target), "mode": mode, "files_written": written, "failed": failed}
    (target / SUMMARY_NAME).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    report(1.0, f"exported {written} images")
    return summary
