"""Tests of core.train.run on CPU: one-epoch runs, checkpoints, resume, early stopping, out-of-fold probabilities.
"""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from core.models.checkpoints import load_checkpoint, load_out_of_fold
from core.train.run import main
from tests.training_data import CLASSES, IMAGES_PER_CLASS, config_for, one_torch_thread, tiny

__all__ = ["one_torch_thread", "tiny"]  # fixtures used by name


def test_a_one_epoch_run_gives_consistent_metrics_and_loadable_checkpoints(tiny, tmp_path, one_torch_thread):
    root, table = tiny
    epochs = []
    messages = []
    config = config_for(tmp_path)
    result = main(config, table, CLASSES, root, on_epoch=epochs.append,
                  progress=lambda fraction, message: messages.append((fraction, message)))
    metrics = result["metrics"]
    validation = result["validation"]
    val_size = len(result["split"]["val"])
    assert val_size == len(CLASSES) * round(0.2 * IMAGES_PER_CLASS)
    assert result["samples"]["used"] == len(CLASSES) * IMAGES_PER_CLASS
    assert sum(metrics["support"]) == val_size == metrics["n"]
    assert np.asarray(metrics["confusion_matrix"]).sum() == val_size
    precision, recall, f1, support = precision_recall_fscore_support(
        validation["true"], validation["pred"], labels=range(len(CLASSES)), zero_division=0)
    np.testing.assert_allclose(metrics["precision"], precision)
    np.testing.assert_allclose(metrics["recall"], recall)
    np.testing.assert_allclose(metrics["f1"], f1)
    assert metrics["support"] == support.tolist()
    assert set(result["split"]["train"]).isdisjoint(result["split"]["val"])
    assert len(epochs) == 1 and epochs[0].epoch == 0 and result["history"] == [asdict(epochs[0])]
    assert messages[-1][0] == 1.0 and any("epoch 1/1" in m and "ETA" in m for _, m in messages)
    assert result["device"].startswith("cpu")
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == asdict(config)
    for name in ("best", "last"):
        checkpoint = load_checkpoint(result["checkpoints"][name])
        assert checkpoint["epoch"] == 0 and checkpoint["classes"] == list(CLASSES)
        assert "optimizer" in checkpoint and "classifier.1.weight" in checkpoint["model"]


def test_a_run_resumes_after_its_last_checkpoint(tiny, tmp_path, one_torch_thread):
    root, table = tiny
    first = main(config_for(tmp_path, epochs=1), table, CLASSES, root)
    relabelled = table.assign(current_label="bag")  # the stored samples are used, not the new state
    resumed = main(config_for(tmp_path, epochs=2), relabelled, CLASSES, root, resume=True)
    assert first["resumed_from_epoch"] is None and resumed["resumed_from_epoch"] == 1
    assert [entry["epoch"] for entry in resumed["history"]] == [0, 1]
    assert resumed["history"][0] == first["history"][0]
    assert resumed["split"] == first["split"]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_a_resumed_run_whose_best_epoch_came_before_the_resume_evaluates_the_best_checkpoint(
        tiny, tmp_path, one_torch_thread):
    root, table = tiny
    first = main(config_for(tmp_path, epochs=1), table, CLASSES, root)
    resumed = main(config_for(tmp_path, epochs=2, min_delta=100.0), table, CLASSES, root, resume=True)
    assert resumed["best_epoch"] == 0 and len(resumed["history"]) == 2
    assert resumed["validation"] == first["validation"] and resumed["metrics"] == first["metrics"]


def test_training_stops_early_when_validation_loss_does_not_improve(tiny, tmp_path, one_torch_thread):
    root, table = tiny
    result = main(config_for(tmp_path, epochs=5, patience=1, min_delta=100.0), table, CLASSES, root)
    assert result["stopped_early"] and len(result["history"]) == 2 and result["best_epoch"] == 0
    assert load_checkpoint(result["checkpoints"]["best"])["epoch"] == 0
    assert load_checkpoint(result["checkpoints"]["last"])["epoch"] == 1
    assert result["metrics"]["accuracy"] == pytest.approx(result["history"][0]["val_accuracy"])


def test_too_few_usable_samples_is_an_error(tiny, tmp_path):
    root, table = tiny
    with pytest.raises(ValueError, match="too few usable samples"):
        main(config_for(tmp_path), table.assign(deleted=True), CLASSES, root)


def test_k_fold_gives_out_of_fold_probabilities_for_every_sample(tiny, tmp_path, one_torch_thread):
    root, table = tiny
    result = main(config_for(tmp_path, folds=2), table, CLASSES, root)
    ids = np.asarray(result["split"]["train"] + result["split"]["val"])[::-1]
    probs = load_out_of_fold(result["out_dir"], ids, classes=CLASSES)
    assert probs.shape == (len(CLASSES) * IMAGES_PER_CLASS, len(CLASSES))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    stored_ids = np.load(result["out_of_fold"]["sample_ids"])
    stored = np.load(result["out_of_fold"]["pred_probs"])
    np.testing.assert_array_equal(probs[0], stored[list(stored_ids).index(ids[0])])
    with pytest.raises(KeyError, match="no out-of-fold"):
        load_out_of_fold(result["out_dir"], [999])
    with pytest.raises(ValueError, match="differ"):
        load_out_of_fold(result["out_dir"], ids, classes=["x", "y", "z"])
