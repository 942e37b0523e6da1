"""Tests of `listing-audit train`, `runs` and `metrics`, run in-process on a tiny scanned dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cli.main import main
from tests.training_data import CLASSES, one_torch_thread, scanned_dataset

__all__ = ["one_torch_thread"]  # fixture used by name
FAST_OPTIONS = ["--pretrained", "none", "--epochs", "1", "--image-size", "32", "--batch-size", "4", "--device", "cpu",
                "--cpu-threads", "1"]


@pytest.fixture
def dataset_dir(factory, tmp_path):
    scanned_dataset(factory, tmp_path / "data")
    return tmp_path / "data"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_prints_the_run_id_and_metrics_which_metrics_and_runs_read_back(
        capsys, db_path, dataset_dir, one_torch_thread):
    status, out, _ = run_cli(capsys, "train", dataset_dir, "--db", db_path, *FAST_OPTIONS, "--seed", "3",
                             "--format", "json")
    assert status == 0
    trained = json.loads(out)
    run_id = trained["run"]
    assert trained["device"].startswith("cpu") and trained["best_epoch"] == 0

    status, out, _ = run_cli(capsys, "metrics", run_id, "--db", db_path, "--format", "json")
    assert status == 0
    metrics = json.loads(out)
    assert metrics["classes"] == list(CLASSES)
    for key in ("precision", "recall", "f1", "support"):
        assert len(metrics[key]) == len(CLASSES)
    for key in ("accuracy", "macro_avg", "weighted_avg", "confusion_matrix"):
        assert key in metrics
    assert np.asarray(metrics["confusion_matrix"]).sum() == sum(metrics["support"]) == metrics["macro_avg"]["support"]
    timing = {key: metrics.pop(key) for key in ("seconds", "phases", "fold_phases")}
    assert metrics == {"run": run_id, **trained["metrics"]}
    assert timing["phases"]["train"] > 0 and timing["fold_phases"] == []
    assert sum(timing["phases"].values()) == pytest.approx(timing["seconds"], abs=0.01)
    status, plain, _ = run_cli(capsys, "metrics", run_id, "--db", db_path)
    assert json.loads(plain) == {**metrics, **timing}  # JSON is the default
    status, text, _ = run_cli(capsys, "metrics", run_id, "--db", db_path, "--format", "text")
    assert status == 0 and f"{timing['seconds']:.1f} s in all: " in text and "train " in text

    status, out, _ = run_cli(capsys, "runs", dataset_dir, "--db", db_path, "--format", "json")
    runs = json.loads(out)
    assert [(r["run"], r["status"], r["backbone"], r["epochs_done"]) for r in runs] == [
        (run_id, "succeeded", "mobilenet_v2", 1)]
    status, out, _ = run_cli(capsys, "runs", dataset_dir, "--db", db_path)
    assert status == 0 and "succeeded" in out.splitlines()[1]


def test_train_in_text_prints_a_classification_report(capsys, db_path, dataset_dir, one_torch_thread):
    status, out, _ = run_cli(capsys, "train", dataset_dir, "--db", db_path, *FAST_OPTIONS)
    assert status == 0
    assert out.startswith("run 1 succeeded on cpu")
    assert "macro F1" in out and "weighted avg" in out and "confusion matrix" in out
    status, out, _ = run_cli(capsys, "metrics", "1", "--db", db_path, "--format", "text")
    assert status == 0 and out.splitlines()[0].split() == ["precision", "recall", "f1-score", "support"]


def test_errors_are_reported_with_status_2(capsys, db_path, dataset_dir, tmp_path):
    status, _, err = run_cli(capsys, "metrics", "42", "--db", db_path)
    assert status == 2 and "no training run 42" in err
    (tmp_path / "unscanned" / "a").mkdir(parents=True)
    status, _, err = run_cli(capsys, "train", tmp_path / "unscanned", "--db", db_path)
    assert status == 2 and "listing-audit scan" in err
    status, _, err = run_cli(capsys, "train", dataset_dir, "--db", db_path, "--lr", "-1")
    assert status == 2 and "lr must be positive" in err
    status, _, err = run_cli(capsys, "train", dataset_dir, "--db", db_path, "--resume", "7")
    assert status == 2 and "not a training run" in err


def test_a_failed_run_exits_with_its_error(capsys, db_path, dataset_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    status, _, err = run_cli(capsys, "train", dataset_dir, "--db", db_path, "--backbone", "resnet18",
                             "--epochs", "1", "--image-size", "32")
    assert status == 2
    assert "run 1 failed: WeightsUnavailable" in err and "--pretrained none" in err
