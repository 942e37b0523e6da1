"""Export planning and writing: layout, exclusions, collisions, unsafe names, safety of source and target."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from core.export import (
    MARKER_NAME, ExportError, UnsafeClassName, check_class_names, format_summary, plan_export, unsafe_name_reason,
    write_export,
)
from tests.conftest import make_image


def _frame(rows: list[dict]) -> pd.DataFrame:
    defaults = {"deleted": False, "readable": True, "missing": False, "last_action": "", "reviewer": "",
                "price_fixed": False}
    return pd.DataFrame([{**defaults, **row} for row in rows])


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "source"
    for path in ("bag/a.png", "bag/b.png", "bag/sub/c.png", "shoe/a.png", "shoe/d.png", "phone/e.png"):
        make_image(root / path, size=(8, 8))
    (root / "shoe/broken.jpg").write_bytes(b"not an image")
    return root


@pytest.fixture
def samples() -> pd.DataFrame:
    return _frame([
        {"path": "bag/a.png", "label": "bag", "current_label": "shoe", "last_action": "relabel", "reviewer": "ann"},
        {"path": "bag/b.png", "label": "bag", "current_label": "bag", "deleted": True, "last_action": "delete",
         "reviewer": "bob"},
        {"path": "bag/sub/c.png", "label": "bag", "current_label": "phone", "last_action": "relabel", "reviewer": "ann"},
        {"path": "shoe/a.png", "label": "shoe", "current_label": "shoe"},
        {"path": "shoe/d.png", "label": "shoe", "current_label": "shoe", "last_action": "keep", "reviewer": "ann"},
        {"path": "shoe/broken.jpg", "label": "shoe", "current_label": "shoe", "readable": False},
        {"path": "phone/e.png", "label": "phone", "current_label": "phone"},
        {"path": "phone/gone.png", "label": "phone", "current_label": "phone", "missing": True},
    ])


def _checksums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_plan_sends_relabels_to_their_new_class_and_leaves_out_deleted_broken_missing(samples):
    plan = plan_export(samples)
    manifest = plan.manifest.set_index("path")
    assert manifest.loc["bag/sub/c.png", "output_path"] == "phone/sub/c.png"
    # shoe/a.png already exists in the target class: the moved bag/a.png gets a name that says where it came from
    assert manifest.loc["shoe/a.png", "output_path"] == "shoe/a.png"
    assert manifest.loc["bag/a.png", "output_path"] == "shoe/a__from_bag.png"
    assert {p: manifest.loc[p, "decision"] for p in ("bag/b.png", "shoe/broken.jpg", "phone/gone.png")} == {
        "bag/b.png": "deleted", "shoe/broken.jpg": "broken", "phone/gone.png": "missing"}
    assert (manifest.loc[["bag/b.png", "shoe/broken.jpg", "phone/gone.png"], "output_path"] == "").all()
    assert manifest.loc["shoe/d.png", "decision"] == "kept" and manifest.loc["phone/e.png", "decision"] == "unchanged"
    assert plan.summary["decisions"] == {"unchanged": 2, "kept": 1, "price_fixed": 0, "relabelled": 2, "deleted": 1,
                                         "broken": 1, "missing": 1, "vanished": 0, "changed": 0, "refused": 0}
    assert plan.summary["relabelled"] == [{"from": "bag", "to": "phone", "count": 1},
                                          {"from": "bag", "to": "shoe", "count": 1}]
    assert plan.summary["classes_after"] == {"phone": 2, "shoe": 3}
    assert plan.summary["renamed_to_avoid_clash"] == 1


def test_a_price_fix_is_its_own_decision_and_a_relabel_with_one_stays_a_relabel():
    plan = plan_export(_frame([
        {"path": "phone/f.png", "label": "phone", "current_label": "phone", "last_action": "price",
         "price_fixed": True},
        {"path": "phone/g.png", "label": "phone", "current_label": "bag", "last_action": "relabel",
         "price_fixed": True},
        {"path": "phone/h.png", "label": "phone", "current_label": "phone", "last_action": "keep"},
    ]))
    assert plan.manifest["decision"].tolist() == ["price_fixed", "relabelled", "kept"]
    assert plan.summary["decisions"]["price_fixed"] == 1 and plan.summary["decisions"]["kept"] == 1
    assert "1 relabelled, 1 with a fixed price, 0 deleted" in format_summary(plan.summary)


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


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "a\\b", "nul\x00byte", "CON", "lpt1.txt", ".hidden",
                                  "trailing ", "line\nbreak", "x" * 300, "what?"])
def test_unsafe_class_names_are_refused(name, tmp_path, source):
    assert unsafe_name_reason(name) is not None
    samples = _frame([{"path": "bag/a.png", "label": "bag", "current_label": name, "last_action": "relabel"}])
    with pytest.raises(UnsafeClassName, match="not safe as folder names"):
        plan_export(samples)
    assert not (tmp_path / "out").exists()


def test_safe_class_names_pass():
    check_class_names(["bag", "T-shirt/top".replace("/", "-"), "Sneaker", "ankle boot", "café", "con-tainer"])


def test_a_path_that_would_escape_its_class_folder_is_refused():
    samples = _frame([{"path": "bag/../../etc/passwd", "label": "bag", "current_label": "bag"}])
    with pytest.raises(ExportError, match="unsafe sample path"):
        plan_export(samples)


def test_a_source_file_that_vanished_is_reported_not_fatal(tmp_path, source, samples):
    (source / "phone/e.png").unlink()
    summary = write_export(plan_export(samples), source_root=source, out=tmp_path / "out")
    assert summary["failed"] == ["phone/e.png"] and summary["files_written"] == 4


def test_unknown_mode_is_refused(tmp_path, source, samples):
    with pytest.raises(ExportError, match="modes are: copy, symlink, manifest"):
        write_export(plan_export(samples), source_root=source, out=tmp_path / "out", mode="zip")
