"""`listing-audit audit` and `listing-audit flags`, run in-process on a real folder and a temporary database."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.audit_data import BROKEN_PATH, COPY_PATH, TYPO_PATH, build_audit_dataset
from tests.cli import run_cli

CHECKS = "broken,quality,duplicate,price"
FLAG_COLUMNS = ["path", "kind", "sure", "given_label", "suggested_label", "group", "reason", "sample_id", "flag_id",
                "audit"]


@pytest.fixture
def shop(tmp_path, db_path, capsys):
    root = build_audit_dataset(tmp_path / "shop")
    assert run_cli(capsys, "scan", root, "--db", db_path, "--workers", "1")[0] == 0
    return root


def test_audit_prints_a_summary_per_kind(capsys, shop, db_path):
    code, out, err = run_cli(capsys, "audit", shop, "--db", db_path, "--checks", CHECKS)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Audit 1 of ") and "22 samples, 2 classes, 4 flags" in lines[0]
    table = {line.split()[0]: line.split()[1] for line in lines[2:6]}
    assert table == {"broken": "1", "quality": "0", "duplicate": "2", "price": "1"}
    assert "1 groups, 1 with conflicting labels" in out
    assert "noisiest classes" in out and "dear" in out


def test_audit_json_output(capsys, shop, db_path):
    code, out, _ = run_cli(capsys, "audit", shop, "--db", db_path, "--checks", "broken,price", "--format", "json")
    result = json.loads(out)
    assert code == 0 and result["audit"] == 1 and result["flags_by_kind"] == {"broken": 1, "price": 1}


def test_flags_lists_one_row_per_flag_worst_first(capsys, shop, db_path):
    run_cli(capsys, "audit", shop, "--db", db_path, "--checks", CHECKS)
    code, out, _ = run_cli(capsys, "flags", shop, "--db", db_path)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and list(rows[0]) == FLAG_COLUMNS
    assert [(row["path"], row["kind"]) for row in rows][0] == (BROKEN_PATH, "broken")
    assert sorted((row["path"], row["kind"]) for row in rows) == sorted([
        (BROKEN_PATH, "broken"), (TYPO_PATH, "duplicate"), (COPY_PATH, "duplicate"), (TYPO_PATH, "price")])
    sure = [row["sure"] for row in rows]
    assert sure[0] == "1" and [float(value) for value in sure] == sorted(map(float, sure), reverse=True)
    duplicates = [row for row in rows if row["kind"] == "duplicate"]
    assert {row["group"] for row in duplicates} == {"1"} and {row["suggested_label"] for row in duplicates} == {""}
    price = next(row for row in rows if row["kind"] == "price")
    assert price["group"] == "" and price["given_label"] == "cheap" and "cheap median" in price["reason"]


def test_flags_of_one_kind_as_json_with_evidence(capsys, shop, db_path):
    run_cli(capsys, "audit", shop, "--db", db_path, "--checks", CHECKS)
    code, out, _ = run_cli(capsys, "flags", shop, "--db", db_path, "--kind", "price", "--format", "json", "--evidence")
    rows = json.loads(out)
    assert code == 0 and [row["path"] for row in rows] == [TYPO_PATH]
    assert rows[0]["evidence"]["price"] == 1000.0 and rows[0]["suggested_label"] == ""


def test_flags_of_a_given_job_after_a_later_audit(capsys, shop, db_path):
    run_cli(capsys, "audit", shop, "--db", db_path, "--checks", "broken")
    run_cli(capsys, "audit", shop, "--db", db_path, "--checks", "price")
    latest = list(csv.DictReader(io.StringIO(run_cli(capsys, "flags", shop, "--db", db_path)[1])))
    first = list(csv.DictReader(io.StringIO(run_cli(capsys, "flags", shop, "--db", db_path, "--job", 1)[1])))
    assert [row["kind"] for row in latest] == ["price"] and [row["kind"] for row in first] == ["broken"]


@pytest.mark.parametrize("argv, message", [
    (["audit", "{root}", "--checks", "broken,colour"], "unknown check 'colour'; checks are: broken"),
    (["audit", "{root}", "--folds", "1"], "--folds must be at least 2"),
    (["audit", "{root}", "--backbone", "nonexistent"], "unknown backbone 'nonexistent'; backbones are: "),
    (["flags", "{root}"], "has no finished audit"),
    (["flags", "{root}", "--job", "1"], "audit 1 is not an audit of"),
    (["flags", "{root}", "--kind", "colour"], "unknown kind 'colour'"),
])
def test_clear_errors(capsys, shop, db_path, argv, message):
    code, _, err = run_cli(capsys, *[arg.format(root=shop) for arg in argv], "--db", db_path)
    assert code == 2 and message in err


def test_a_folder_that_was_never_scanned_is_refused(capsys, tmp_path, db_path):
    root = build_audit_dataset(tmp_path / "new")
    code, _, err = run_cli(capsys, "audit", root, "--db", db_path, "--checks", "broken")
    assert code == 2 and "run `listing-audit scan" in err


def test_the_default_audit_runs_every_check_including_mislabels(capsys, shop, db_path):
    code, out, err = run_cli(capsys, "audit", shop, "--db", db_path, "--backbone", "pixels", "--folds", "2",
                         "--format", "json")
    result = json.loads(out)
    assert code == 0, err
    assert list(result["checks"]) == ["broken", "quality", "duplicate", "mislabel", "price"]
    assert result["checks"]["mislabel"]["backbone"].startswith("pixels") and result["checks"]["mislabel"]["folds"] == 2
    rows = list(csv.DictReader(io.StringIO(run_cli(capsys, "flags", shop, "--db", db_path)[1])))
    assert {row["kind"] for row in rows} >= {"broken", "duplicate", "price"}


def test_price_evidence_is_on_by_default_and_can_be_switched_off(capsys, shop, db_path):
    common = ("audit", shop, "--db", db_path, "--checks", "mislabel", "--backbone", "pixels", "--folds", "2",
              "--format", "json")
    default = json.loads(run_cli(capsys, *common)[1])
    photos_only = json.loads(run_cli(capsys, *common, "--no-price-evidence")[1])
    assert default["checks"]["mislabel"]["price_evidence"] is True
    assert photos_only["checks"]["mislabel"]["price_evidence"] is False


def test_mislabels_from_a_k_fold_training_run(capsys, shop, db_path):
    code, out, err = run_cli(capsys, "audit", shop, "--db", db_path, "--checks", "mislabel", "--mislabel-source", "run")
    assert code == 2 and "train one with `listing-audit train DATASET_DIR --folds 5`" in err
    code, out, err = run_cli(capsys, "train", shop, "--db", db_path, "--pretrained", "none", "--image-size", "32",
                         "--epochs", "1", "--batch-size", "4", "--folds", "2", "--cpu-threads", "1",
                         "--format", "json")
    assert code == 0, err
    run_id = json.loads(out)["run"]
    code, out, err = run_cli(capsys, "audit", shop, "--db", db_path, "--checks", "mislabel", "--mislabel-source", "run",
                         "--run", run_id, "--format", "json")
    assert code == 0, err
    summary = json.loads(out)["checks"]["mislabel"]
    assert summary["source"] == "run"
    runs = json.loads(run_cli(capsys, "runs", shop, "--db", db_path, "--format", "json")[1])
    assert [run["run"] for run in runs] == [int(run_id)] and Path(summary["run_dir"], "oof_pred_probs.npy").is_file()
    code, out, err = run_cli(capsys, "audit", shop, "--db", db_path, "--checks", "mislabel", "--run", run_id)
    assert code == 2 and "--run needs --mislabel-source run" in err
    for stored in Path(summary["run_dir"]).glob("oof*"):  # the run's probabilities are gone: that check fails alone
        stored.unlink()
    code, out, err = run_cli(capsys, "audit", shop, "--db", db_path, "--checks", "mislabel,price",
                             "--mislabel-source", "run", "--run", run_id)
    assert code == 1 and "mislabel   failed" in out and "FileNotFoundError" in out
    assert err.startswith("error: the mislabel check failed, the other checks' flags are kept: FileNotFoundError")
    rows = list(csv.DictReader(io.StringIO(run_cli(capsys, "flags", shop, "--db", db_path)[1])))
    assert [row["kind"] for row in rows] == ["price"] and rows[0]["path"] == TYPO_PATH
