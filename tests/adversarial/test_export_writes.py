"""Exports that must not delete what they did not write, crash on long names, or leave half an export behind."""
from __future__ import annotations

import errno
import json
from pathlib import Path, PurePath

import pandas as pd
import pytest

from core.export.write import MARKER_NAME, write_export
from core.export.plan import ExportError, plan_export
from tests.cli import run_cli
from tests.conftest import make_image
from tests.review_data import build_review_data

LONG_NAME = "x" * 247 + ".png"  # 251 characters: with `__from_bag` appended it would pass 255 bytes


def _frame(rows: list[dict]) -> pd.DataFrame:
    defaults = {"deleted": False, "readable": True, "missing": False, "last_action": "", "reviewer": ""}
    return pd.DataFrame([{**defaults, **row} for row in rows])


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "source"
    for path in ("bag/a.png", "bag/b.png", "shoe/a.png", f"bag/{LONG_NAME}", f"shoe/{LONG_NAME}"):
        make_image(root / path, size=(8, 8))
    return root


@pytest.fixture
def samples() -> pd.DataFrame:
    return _frame([
        {"path": "bag/a.png", "label": "bag", "current_label": "shoe", "last_action": "relabel"},
        {"path": "bag/b.png", "label": "bag", "current_label": "bag"},
        {"path": "shoe/a.png", "label": "shoe", "current_label": "shoe"},
    ])


# --- overwrite removes only what an export of ours wrote ----------------------------------------


def test_a_folder_with_a_foreign_manifest_is_refused_and_its_files_survive(tmp_path, source, samples):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.csv").write_text("path,output_path\nx,important.txt\n")
    (out / "important.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ExportError, match=f"holds no earlier export \\(no {MARKER_NAME}\\)"):
            write_export(plan_export(samples), source_root=source, out=out, overwrite=overwrite)
    assert (out / "important.txt").read_text() == "keep me"
    assert _files(out) == {"manifest.csv", "important.txt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "source"]


def test_overwrite_removes_only_the_files_the_marker_lists(tmp_path, source, samples):
    out = tmp_path / "out"
    write_export(plan_export(samples), source_root=source, out=out)
    (out / "important.txt").write_text("keep me")
    (out / "bag/notes.txt").write_text("mine")
    # A manifest edited to name other files must not make them deletable: only the marker counts.
    (out / "manifest.csv").write_text("path,output_path\nx,important.txt\ny,bag/notes.txt\n")
    fewer = samples[samples["path"] != "bag/b.png"]
    summary = write_export(plan_export(fewer), source_root=source, out=out, overwrite=True)
    assert _files(out) == {"shoe/a.png", "shoe/a__from_bag.png", "manifest.csv", "summary.json", MARKER_NAME,
                           "important.txt", "bag/notes.txt"}
    assert (out / "important.txt").read_text() == "keep me" and (out / "bag/notes.txt").read_text() == "mine"
    assert json.loads((out / MARKER_NAME).read_text())["files"] == sorted(
        ["manifest.csv", "summary.json", "shoe/a.png", "shoe/a__from_bag.png"])
    assert summary["files_written"] == 2


def test_overwrite_refuses_to_replace_a_file_no_export_wrote(tmp_path, source, samples):
    out = tmp_path / "out"
    write_export(plan_export(samples[samples["path"] != "bag/b.png"]), source_root=source, out=out)
    (out / "bag").mkdir()
    (out / "bag/b.png").write_text("someone's own file")
    with pytest.raises(ExportError, match="holds bag/b.png, which no earlier export wrote"):
        write_export(plan_export(samples), source_root=source, out=out, overwrite=True)
    assert (out / "bag/b.png").read_text() == "someone's own file"


def test_a_marker_naming_a_path_outside_the_folder_is_refused(tmp_path, source, samples):
    out = tmp_path / "out"
    write_export(plan_export(samples), source_root=source, out=out)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / MARKER_NAME).write_text(json.dumps({"files": ["../victim.txt"]}))
    with pytest.raises(ExportError, match="unsafe sample path '../victim.txt'"):
        write_export(plan_export(samples), source_root=source, out=out, overwrite=True)
    assert victim.read_text() == "keep me"


def test_the_cli_refuses_a_foreign_folder_in_one_line(capsys, tmp_path, factory, db_path):
    data = build_review_data(tmp_path / "tiny", factory)
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.csv").write_text("path,output_path\nx,important.txt\n")
    (out / "important.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "export", data.root, "--out", out, "--overwrite", "--db", db_path)
    assert code == 2 and err.startswith("error: ") and "holds no earlier export" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "important.txt").read_text() == "keep me"


# --- long names and failures ----------------------------------------------------------------------


def test_a_long_name_moved_onto_a_taken_name_is_shortened_to_fit(tmp_path, source):
    samples = _frame([
        {"path": f"bag/{LONG_NAME}", "label": "bag", "current_label": "shoe", "last_action": "relabel"},
        {"path": f"shoe/{LONG_NAME}", "label": "shoe", "current_label": "shoe"},
    ])
    out = tmp_path / "out"
    summary = write_export(plan_export(samples), source_root=source, out=out)
    renamed = {p.name for p in (out / "shoe").iterdir()} - {LONG_NAME}
    assert len(renamed) == 1 and summary["files_written"] == 2
    name = renamed.pop()
    assert len(name.encode("utf-8")) == 255 and name.endswith("__from_bag.png") and name.startswith("xxxx")


def test_shortening_keeps_multibyte_characters_whole_and_names_distinct():
    long_utf8 = "é" * 125 + ".png"  # 254 bytes
    samples = _frame(
        [{"path": f"shoe/{long_utf8}", "label": "shoe", "current_label": "shoe"}]
        + [{"path": f"{label}/{long_utf8}", "label": label, "current_label": "shoe", "last_action": "relabel"}
           for label in ("bag", "bag2", "bag3")]
    )
    outputs = plan_export(samples).manifest["output_path"].tolist()
    names = [PurePath(output).name for output in outputs]
    assert len(set(output.casefold() for output in outputs)) == 4
    for name in names:
        assert len(name.encode("utf-8")) <= 255
        name.encode("utf-8").decode("utf-8")  # no character cut in half
        assert name.endswith(".png")


def test_a_failing_export_leaves_no_partial_folder_behind(tmp_path, source, samples, monkeypatch):
    calls = []

    def write_then_fail(path, data):  # the disk fills up on the second image
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(path, data)

    real_write_bytes = Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes", write_then_fail)
    with pytest.raises(ExportError, match="No space left on device"):
        write_export(plan_export(samples), source_root=source, out=tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


def test_a_failing_overwrite_leaves_the_earlier_export_as_it_was(tmp_path, source, samples, monkeypatch):
    out = tmp_path / "out"
    write_export(plan_export(samples), source_root=source, out=out)
    before = {name: (out / name).read_bytes() for name in _files(out)}

    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(ExportError, match="No space left on device"):
        write_export(plan_export(samples), source_root=source, out=out, overwrite=True)
    assert {name: (out / name).read_bytes() for name in _files(out)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "source"]


def test_a_file_swapped_for_a_link_out_after_the_scan_is_not_exported(capsys, tmp_path, db_path, factory):
    data = build_review_data(tmp_path / "tiny", factory)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:*:19000:0:99999:7:::")
    swapped = data.root / "bag" / "bag-3.png"
    swapped.unlink()
    swapped.symlink_to(secret)  # after the scan: the database still holds it as an image
    out = tmp_path / "clean"
    code, stdout, err = run_cli(capsys, "export", data.root, "--out", out, "--db", db_path)
    assert code == 0, err
    assert "bag/bag-3.png now leads outside the dataset folder and was not exported" in stdout
    assert not any("root:*" in path.read_text(errors="ignore") for path in out.rglob("*") if path.is_file())
    assert not (out / "bag" / "bag-3.png").exists() and (out / "bag" / "bag-2.png").is_file()
