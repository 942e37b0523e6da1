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
from core.models.loop import LOG_EVERY_STEPS, PHASES, PhaseClock, evaluate, make_criterion, train_one_epoch
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


def test_every_training_step_and_evaluation_batch_reports_so_a_cancel_is_heard_within_one(one_torch_thread):
    """A cancel request is heard at a progress report: one every LOG_EVERY_STEPS steps let a run go on
    for about 29 s after Cancel at 2 cores, and an evaluation never reported at all."""
    torch.manual_seed(0)
    model = build_model("mobilenet_v2", 2, pretrained=False).to(memory_format=torch.channels_last)
    pixels = torch.randint(0, 256, (24, 16, 16, 3), dtype=torch.uint8)
    labels = np.arange(24) % 2
    batches = MemoryBatches(pixels, labels, np.arange(24), batch_size=2, device=torch.device("cpu"),
                            sampler="shuffle", training=True)
    assert len(batches) > LOG_EVERY_STEPS
    steps, batch_reports = [], []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    train_one_epoch(model, batches, torch.nn.CrossEntropyLoss(), optimizer, epoch=0,
                    scaler=torch.amp.GradScaler("cpu", enabled=False),
                    on_step=lambda step, total, loss: steps.append((step, total, loss)))
    assert [step for step, _, _ in steps] == list(range(1, len(batches) + 1))
    losses = [loss for _, _, loss in steps]
    assert np.isfinite(losses).all() and len(set(losses[:LOG_EVERY_STEPS - 1])) == 1  # as last read (a GPU sync)
    evaluate(model, MemoryBatches(pixels, labels, np.arange(24), batch_size=5, device=torch.device("cpu")),
             on_batch=lambda done, total: batch_reports.append((done, total)))
    assert batch_reports == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
