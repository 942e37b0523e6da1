"""`listing-audit compare`: two real runs on common ground, against today's and verified labels."""
from __future__ import annotations

import json

from sqlalchemy import select

from db.corrections import decide
from db.models import Sample
from tests.cli.test_train_commands import FAST_OPTIONS, run_cli
from tests.training_data import CLASSES, one_torch_thread, scanned_dataset

__all__ = ["one_torch_thread"]  # fixture used by name


def trained(capsys, db_path, dataset_dir, *options: str) -> int:
    status, out, err = run_cli(capsys, "train", dataset_dir, "--db", db_path, *FAST_OPTIONS, *options,
                               "--format", "json")
    assert status == 0, err
    return json.loads(out)["run"]


def test_compare_scores_both_runs_on_the_same_images_and_labels(capsys, factory, db_path, tmp_path,
                                                                 one_torch_thread):
    scanned_dataset(factory, tmp_path / "data")
    before = trained(capsys, db_path, tmp_path / "data")
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == "dress/dress-0.jpg")).one()
        decide(session, sample, "keep", classes=list(CLASSES), reviewer="ann")
    after = trained(capsys, db_path, tmp_path / "data", "--seed", "5")

    status, out, _ = run_cli(capsys, "compare", before, after, "--db", db_path, "--format", "json")
    assert status == 0
    compared = json.loads(out)
    assert (compared["run_a"], compared["run_b"], compared["labels"]) == (before, after, "current")
    assert compared["images"] >= 2 and compared["before_only"] == compared["after_only"] == 0
    overall = {row["metric"]: row for row in compared["changes"] if row["row"] == "overall"}
    assert overall["accuracy"]["low"] <= overall["accuracy"]["change"] <= overall["accuracy"]["high"]
    assert overall["accuracy"]["support"] == compared["images"]

    status, text, _ = run_cli(capsys, "compare", before, after, "--db", db_path)
    assert status == 0
    assert text.startswith(f"Run {before} → run {after} on the {compared['images']} validation images both runs "
                           "scored, against today's labels")
    assert "macro F1" in text and "per class" in text

    status, out, _ = run_cli(capsys, "compare", before, after, "--db", db_path, "--labels", "verified",
                             "--format", "json")
    verified = json.loads(out)
    assert verified["images"] <= 1 and verified["before_only"] == compared["images"] - verified["images"]

    status, _, err = run_cli(capsys, "compare", before, 999, "--db", db_path)
    assert status == 2 and err.strip() == "error: no training run 999"
