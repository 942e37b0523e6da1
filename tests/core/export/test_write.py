"""Tests of core.export.write on real folders: copies, links, manifests, overwrite, and a source that changed.
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from core.export.plan import ExportError, plan_export
from core.export.write import MARKER_NAME, write_export
from tests.conftest import make_image
from tests.core.export.test_plan import samples

__all__ = ["samples"]  # fixture used by name


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "source"
    for path in ("bag/a.png", "bag/b.png", "bag/sub/c.png", "shoe/a.png", "shoe/d.png", "phone/e.png"):
        make_image(root / path, size=(8, 8))
    (root / "shoe/broken.jpg").write_bytes(b"not an image")
    return root


def _checksums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_write_copies_the_planned_layout_and_leaves_the_source_unchanged(tmp_path, source, samples):
    before = _checksums(source)
    out = tmp_path / "out"
    summary = write_export(plan_export(samples), source_root=source, out=out, mode="copy")
    assert _files(out) == {"shoe/a.png", "shoe/a__from_bag.png", "shoe/d.png", "phone/sub/c.png", "phone/e.png",
                           "manifest.csv", "summary.json", MARKER_NAME}
    assert (out / "shoe/a__from_bag.png").read_bytes() == (source / "bag/a.png").read_bytes()
    assert _checksums(source) == before
    assert summary["files_written"] == 5 and summary["failed"] == []
    with (out / "manifest.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["path", "original_label", "final_label", "decision", "reviewer", "output_path"]
    assert {row["path"]: row["reviewer"] for row in rows}["bag/b.png"] == "bob"
    assert json.loads((out / "summary.json").read_text())["exported"] == 5


def test_symlink_mode_links_to_the_source_and_manifest_mode_writes_no_images(tmp_path, source, samples):
    links = tmp_path / "links"
    write_export(plan_export(samples), source_root=source, out=links, mode="symlink")
    assert (links / "phone/sub/c.png").is_symlink()
    assert (links / "phone/sub/c.png").resolve() == (source / "bag/sub/c.png").resolve()
    only = tmp_path / "manifest-only"
    write_export(plan_export(samples), source_root=source, out=only, mode="manifest")
    assert _files(only) == {"manifest.csv", "summary.json", MARKER_NAME}


def test_a_non_empty_out_needs_overwrite_which_replaces_only_the_previous_export(tmp_path, source, samples):
    out = tmp_path / "out"
    write_export(plan_export(samples), source_root=source, out=out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        write_export(plan_export(samples), source_root=source, out=out)
    fewer = samples.copy()
    fewer.loc[fewer["path"] == "phone/e.png", "deleted"] = True
    write_export(plan_export(fewer), source_root=source, out=out, overwrite=True)
    assert "phone/e.png" not in _files(out)  # the stale file of the previous export is gone
    assert (out / "notes.txt").read_text() == "mine"


def test_out_may_not_be_inside_or_contain_the_source(tmp_path, source, samples):
    before = _checksums(source)
    for out in (source, source / "exported", tmp_path):
        with pytest.raises(ExportError, match="dataset folder"):
            write_export(plan_export(samples), source_root=source, out=out, overwrite=True)
    assert _checksums(source) == before


def test_a_source_file_that_vanished_is_reported_not_fatal(tmp_path, source, samples):
    (source / "phone/e.png").unlink()
    summary = write_export(plan_export(samples), source_root=source, out=tmp_path / "out")
    assert summary["failed"] == ["phone/e.png"] and summary["files_written"] == 4


def test_unknown_mode_is_refused(tmp_path, source, samples):
    with pytest.raises(ExportError, match="modes are: copy, symlink, manifest"):
        write_export(plan_export(samples), source_root=source, out=tmp_path / "out", mode="zip")
