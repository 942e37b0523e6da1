"""bench/gpu_check.sh --small: every section runs on the CPU and its JSON holds positive numbers."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


@pytest.mark.slow  # a minute or two: three processes load torch
def test_the_small_check_writes_every_section_with_positive_numbers(tmp_path):
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--small", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["setup"]["small"] and report["setup"]["dataset"] == "demo (photos)"
    for loop in ("ours", "plain"):
        assert report["loops"][loop]["train_images_per_s"] > 0 and report["loops"][loop]["eval_images_per_s"] > 0
    for job, folds in (("train", 0), ("folds", 5)):
        run = report[job]
        assert run["folds"] == folds and len(run["fold_phases"]) == folds
        assert run["seconds"] > 0 and run["train_plus_evaluate_s"] > 0 and run["process_seconds"] >= run["seconds"]
        assert all(seconds >= 0 for seconds in run["phases"].values()) and run["phases"]["train"] > 0
        assert 0 < run["overhead_share"] < 1
    assert report["embedding"]["images"] > 0 and report["embedding"]["images_per_s"] > 0
    table = done.stdout
    for row in ("loop ours: training", "loop plain: training", "train job (1 epoch)", "folds job (1 epoch, 5 folds)", "embedding ("):
        assert row in table
