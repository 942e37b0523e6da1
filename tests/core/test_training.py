"""Tests of core.training on CPU: config, backbones, split, the loop, checkpoints, resume, out-of-fold probabilities."""
from __future__ import annotations

import json
import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support

from core.models.config import BACKBONE_NAMES, OPTIMIZERS, SCHEDULERS
from core.models.data import Augmentation, MemoryBatches
from core.training import (BACKBONES, OPTIMIZER_FACTORIES, PHASES, SCHEDULER_FACTORIES, PhaseClock, TrainConfig,
                           WeightsUnavailable, build_model, evaluate, load_checkpoint, load_out_of_fold, main,
                           make_criterion, select_samples, set_backbone_frozen, stratified_split, train_one_epoch,
                           weights_available)
from tests.training_data import CLASSES, FAST_CONFIG, IMAGES_PER_CLASS, one_torch_thread, write_training_images

__all__ = ["one_torch_thread"]  # fixture used by name


def samples_table(root) -> pd.DataFrame:
    """The tiny dataset as db.queries.samples_frame would give it (ids 1.., no corrections)."""
    rows = []
    for path in sorted(p for p in root.rglob("*.jpg")):
        relative = path.relative_to(root).as_posix()
        readable = not relative.endswith("broken.jpg")
        rows.append({"id": len(rows) + 1, "path": relative, "label": relative.split("/")[0],
                     "current_label": relative.split("/")[0], "deleted": False, "readable": readable,
                     "content_hash": f"{hash(relative) & 0xFFFFFFFF:064x}" if readable else None})
    return pd.DataFrame(rows)


@pytest.fixture
def tiny(tmp_path):
    root = write_training_images(tmp_path / "data")
    return root, samples_table(root)


def config_for(tmp_path, **overrides) -> TrainConfig:
    values = {**FAST_CONFIG, "out_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"), **overrides}
    return TrainConfig.from_dict(values)


# --- config and backbones ---------------------------------------------------------------------------


def test_config_round_trips_through_json_and_refuses_unknown_or_invalid_options():
    config = TrainConfig(backbone="resnet18", epochs=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config
    with pytest.raises(ValueError, match="unknown training options: colour"):
        TrainConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="choose one of: adam, sgd"):
        TrainConfig.from_dict({"optimizer": "rmsprop"})
    with pytest.raises(ValueError, match="backbones are"):
        TrainConfig.from_dict({"backbone": "vgg11"})
    with pytest.raises(ValueError, match="pretrained"):
        TrainConfig.from_dict({"pretrained": False, "freeze_backbone_epochs": 2})


def test_the_config_accepts_exactly_the_backbones_optimizers_and_schedules_that_exist():
    assert tuple(BACKBONES) == BACKBONE_NAMES
    assert tuple(OPTIMIZER_FACTORIES) == OPTIMIZERS
    assert tuple(SCHEDULER_FACTORIES) == SCHEDULERS


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_gets_a_new_head_for_the_classes(name, one_torch_thread):
    model = build_model(name, 5, pretrained=False)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


@pytest.mark.skipif(not weights_available("mobilenet_v2"), reason="MobileNetV2 weights not installed (make setup)")
def test_mobilenet_v2_loads_its_imagenet_weights_offline():
    pretrained = build_model("mobilenet_v2", 3, pretrained=True)
    scratch = build_model("mobilenet_v2", 3, pretrained=False)
    first_conv = lambda model: model.features[0][0].weight
    assert not torch.allclose(first_conv(pretrained), first_conv(scratch))


def test_a_backbone_without_its_weights_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    with pytest.raises(WeightsUnavailable, match="--pretrained none"):
        build_model("resnet50", 3, pretrained=True)


def test_freezing_the_backbone_trains_only_the_head(one_torch_thread):
    model = build_model("mobilenet_v2", 3, pretrained=False)
    model.train()
    set_backbone_frozen(model, "mobilenet_v2", True)
    assert not model.features.training and model.classifier.training
    before = {name: value.clone() for name, value in model.state_dict().items()}
    labels = np.array([0, 1, 2, 0, 1, 2])
    batches = MemoryBatches(torch.randint(0, 255, (6, 32, 32, 3), dtype=torch.uint8), labels, np.arange(6),
                            batch_size=6, device=torch.device("cpu"), augmentation=Augmentation(), training=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_one_epoch(model, batches, torch.nn.CrossEntropyLoss(), optimizer, epoch=0,
                    scaler=torch.amp.GradScaler("cpu", enabled=False))
    after = model.state_dict()
    assert torch.equal(before["features.0.0.weight"], after["features.0.0.weight"])
    assert torch.equal(before["features.0.1.running_mean"], after["features.0.1.running_mean"])
    assert not torch.equal(before["classifier.1.weight"], after["classifier.1.weight"])


def test_class_weighted_loss_weighs_rare_classes_more():
    criterion = make_criterion(TrainConfig(balance="loss"), np.array([0, 0, 0, 1]), 3, torch.device("cpu"))
    np.testing.assert_allclose(criterion.weight.numpy(), [4 / 9, 4 / 3, 1.0], rtol=1e-6)
    assert make_criterion(TrainConfig(), np.array([0, 1]), 2, torch.device("cpu")).weight is None


# --- split --------------------------------------------------------------------------------------------


def test_split_is_stratified_seeded_and_keeps_singletons_for_training():
    ids = np.arange(1, 23)
    strata = ["a"] * 10 + ["b"] * 11 + ["c"]
    is_val = stratified_split(ids, strata, val_fraction=0.2, seed=0)
    assert is_val[:10].sum() == 2 and is_val[10:21].sum() == 2 and not is_val[21]
    assert np.array_equal(is_val, stratified_split(ids, strata, val_fraction=0.2, seed=0))
    assert not np.array_equal(is_val, stratified_split(ids, strata, val_fraction=0.2, seed=1))


def test_a_sample_keeps_its_side_of_the_split_when_others_are_relabelled_or_deleted(tiny):
    _, table = tiny
    before = select_samples(table, CLASSES, val_fraction=0.34, seed=0)
    changed = table.copy()
    changed.loc[changed["path"] == "bag/bag-0.jpg", "current_label"] = "shoe"
    changed.loc[changed["path"] == "dress/dress-1.jpg", "deleted"] = True
    after = select_samples(changed, CLASSES, val_fraction=0.34, seed=0)
    dress_1 = int(table.loc[table["path"] == "dress/dress-1.jpg", "id"].iloc[0])
    assert set(after.split()["val"]) == set(before.split()["val"]) - {dress_1}
    bag_0 = after.paths.index("bag/bag-0.jpg")
    assert after.classes[after.labels[bag_0]] == "shoe"
    assert "shoe/broken.jpg" not in after.paths


def test_copies_of_one_photo_land_on_one_side_of_the_split(tiny):
    _, table = tiny
    table = table.copy()
    before = select_samples(table, CLASSES, val_fraction=0.34, seed=0)
    val_path = next(p for p, i in zip(before.paths, before.sample_ids) if i in set(before.split()["val"]))
    train_path = next(p for p, i in zip(before.paths, before.sample_ids) if i in set(before.split()["train"])
                      and p.split("/")[0] != val_path.split("/")[0])
    # the validation photo re-uploaded under another class: same bytes as a training photo
    copy_hash = table.loc[table["path"] == train_path, "content_hash"].iloc[0]
    table.loc[table["path"] == val_path, "content_hash"] = copy_hash
    after = select_samples(table, CLASSES, val_fraction=0.34, seed=0)
    side = {p: i in set(after.split()["val"]) for p, i in zip(after.paths, after.sample_ids)}
    assert side[val_path] == side[train_path]


# --- where the time goes ---------------------------------------------------------------------------


def test_untimed_seconds_are_start_up_before_training_starts_and_other_after():
    nap = 0.05
    clock = PhaseClock()
    time.sleep(nap)
    with clock.phase("decode"):
        time.sleep(nap)
    clock.training_starts()
    with clock.phase("train", fold=1):
        time.sleep(nap)
    time.sleep(nap)
    phases, wall = clock.phases()
    assert list(phases) == list(PHASES)
    for name in ("startup", "decode", "train", "other"):
        assert phases[name] >= nap * 0.9
    assert phases["evaluate"] == phases["checkpoint"] == phases["fold_setup"] == 0.0
    assert sum(phases.values()) == pytest.approx(wall, abs=0.005)
    assert clock.fold_phases() == [{}, {"train": phases["train"]}]
    with pytest.raises(ValueError, match="timed phases are"):
        with clock.phase("lunch"):
            pass


def test_padded_evaluation_gives_exactly_the_unpadded_predictions(one_torch_thread):
    torch.manual_seed(0)
    model = build_model("mobilenet_v2", 3, pretrained=False).to(memory_format=torch.channels_last)
    pixels = torch.randint(0, 256, (11, 32, 32, 3), dtype=torch.uint8)
    labels = np.arange(11) % 3
    batches = lambda pad: MemoryBatches(pixels, labels, np.arange(11), batch_size=4, device=torch.device("cpu"),
                                        pad=pad)
    padded, plain = evaluate(model, batches(True)), evaluate(model, batches(False))
    assert padded.probs.shape == plain.probs.shape == (11, 3)
    np.testing.assert_allclose(padded.probs, plain.probs, rtol=1e-5, atol=1e-6)
    assert padded.loss == pytest.approx(plain.loss, rel=1e-5) and padded.accuracy == plain.accuracy


# --- a run ----------------------------------------------------------------------------------------


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
