"""What an export of the cleaned dataset will write: each listing's fate and path, the manifest and the summary.

The export is in ImageFolder layout: a sample is written under its final class (relabelled images move, keeping
the rest of their path); deleted, unreadable and missing samples are left out. `manifest.csv` lists every sample
with its fate and `summary.json` what changed. Class names that are not safe as folder names and output paths
that would escape the output folder are refused.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterable, Optional

import pandas as pd

from core.csvsafe import frame_to_csv

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
MAX_NAME_BYTES = 255
#: Longest extension kept whole when a name is shortened.
_MAX_EXTENSION_BYTES = 16


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
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    if ":" in name or any(character in name for character in '<>"|?*'):
        return "contains a character Windows forbids in file names (: < > \" | ? *)"
    return None


def check_class_names(names: Iterable[str]) -> None:
    """Raise UnsafeClassName naming every unsafe class and why."""
    problems = [f"{name!r}: {reason}" for name in sorted(set(names), key=repr)
                if (reason := unsafe_name_reason(name)) is not None]
    if problems:
        raise UnsafeClassName("class names not safe as folder names: " + "; ".join(problems))


def check_relative_path(path: str) -> PurePosixPath:
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
        parts = check_relative_path(row["path"]).parts
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
    """stem + tag + ending within MAX_NAME_BYTES: the stem is shortened first (to one character at
    least), then the tag; `ending` (counter and extension) is always kept whole."""
    room = MAX_NAME_BYTES - len(ending.encode("utf-8"))
    tag_bytes = len(tag.encode("utf-8"))
    stem = truncate_utf8(stem, max(room - tag_bytes, len(stem[:1].encode("utf-8"))))
    return stem + truncate_utf8(tag, room - len(stem.encode("utf-8"))) + ending


def _free_name(candidate: PurePosixPath, old_label: str, taken: set[str]) -> PurePosixPath:
    """`candidate` renamed `<stem>__from_<old label>[_<n>]<extension>`, the first such name not in `taken`.

    The name stays within MAX_NAME_BYTES of UTF-8 (the file-name limit of common
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
