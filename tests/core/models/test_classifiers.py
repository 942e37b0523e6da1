"""Tests of core.models.classifiers on CPU: every backbone's new head, offline weights, freezing.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models.classifiers import BACKBONES, WeightsUnavailable, build_model, set_backbone_frozen, weights_available
from core.models.data import Augmentation, MemoryBatches
from core.models.loop import train_one_epoch
from tests.training_data import one_torch_thread, tiny

__all__ = ["one_torch_thread", "tiny"]  # fixtures used by name


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
