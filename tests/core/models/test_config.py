"""Tests of core.models.config: a training run's options.
"""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from core.models.classifiers import BACKBONES
from core.models.config import BACKBONE_NAMES, OPTIMIZERS, SCHEDULERS, TrainConfig
from core.models.loop import OPTIMIZER_FACTORIES, SCHEDULER_FACTORIES
from tests.training_data import one_torch_thread, tiny

__all__ = ["one_torch_thread", "tiny"]  # fixtures used by name


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
