"""Tests of core.models.loop on CPU: the loss, the phase clock, padded evaluation.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from core.models.classifiers import build_model
from core.models.config import TrainConfig
from core.models.data import MemoryBatches
from core.models.loop import PHASES, PhaseClock, evaluate, make_criterion
from tests.training_data import one_torch_thread, tiny

__all__ = ["one_torch_thread", "tiny"]  # fixtures used by name


def test_class_weighted_loss_weighs_rare_classes_more():
    criterion = make_criterion(TrainConfig(balance="loss"), np.array([0, 0, 0, 1]), 3, torch.device("cpu"))
    np.testing.assert_allclose(criterion.weight.numpy(), [4 / 9, 4 / 3, 1.0], rtol=1e-6)
    assert make_criterion(TrainConfig(), np.array([0, 1]), 2, torch.device("cpu")).weight is None


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
