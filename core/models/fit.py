"""Fit one model on a run's samples (best and last checkpoints, the best one evaluated), or K models for
out-of-fold probabilities of every sample (the mislabel check's fine-tuning source).
"""
from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from core.models.checkpoints import BEST_CHECKPOINT, LAST_CHECKPOINT, link_checkpoint, load_checkpoint, save_checkpoint
from core.models.classifiers import amp_dtype, set_backbone_frozen
from core.models.config import TrainConfig
from core.models.data import Augmentation, MemoryBatches, place_pixels
from core.models.loop import (OPTIMIZER_FACTORIES, SCHEDULER_FACTORIES, EpochCallback, EpochLog, Evaluation, PhaseClock,
                              StepCallback, evaluate, evaluation_batches, make_criterion, new_model, train_one_epoch)
from core.models.samples import RunSamples
from core.progress import ProgressCallback

log = logging.getLogger(__name__)


@dataclass
class _Training:
    """Everything one model's training needs, built by `_setup`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    train_batches: MemoryBatches
    autocast_dtype: Optional[torch.dtype]


def _setup(config: TrainConfig, pixels: torch.Tensor, labels: np.ndarray, train_index: np.ndarray,
           num_classes: int, device: torch.device, *, start: Optional[nn.Module] = None) -> _Training:
    """Model, optimizer, schedule and batches of one training; `start`: a new model to copy instead of
    building one (the folds share one, so the weights file is read once)."""
    model = copy.deepcopy(start) if start is not None else new_model(config, num_classes, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # batch shapes are fixed: each convolution is tuned once
    optimizer = OPTIMIZER_FACTORIES[config.optimizer](config, model.parameters())
    dtype = amp_dtype(device, config.amp)
    batches = MemoryBatches(
        pixels, labels, train_index, batch_size=config.batch_size, device=device,
        sampler="weighted" if config.balance == "sampler" else "shuffle",
        augmentation=Augmentation() if config.augment else None, training=True, seed=config.seed,
    )
    return _Training(
        model=model, optimizer=optimizer, scheduler=SCHEDULER_FACTORIES[config.scheduler](config, optimizer),
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        criterion=make_criterion(config, labels[train_index], num_classes, device),
        train_batches=batches, autocast_dtype=dtype,
    )


def _train_epoch(config: TrainConfig, training: _Training, epoch: int, on_step: Optional[StepCallback]) -> tuple[dict, bool]:
    frozen = epoch < config.freeze_backbone_epochs
    training.model.train()
    set_backbone_frozen(training.model, config.backbone, frozen)
    averages = train_one_epoch(
        training.model, training.train_batches, training.criterion, training.optimizer, epoch=epoch,
        scaler=training.scaler, autocast_dtype=training.autocast_dtype, on_step=on_step,
    )
    return averages, frozen


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class _Progress:
    """Turns step counts into a fraction of a progress-bar span and a message with the ETA."""

    def __init__(self, report: ProgressCallback, *, start: float, end: float, total_steps: int, label: str):
        self.report, self.start, self.end, self.total_steps, self.label = report, start, end, max(total_steps, 1), label
        self.started = time.monotonic()
        self.fraction = 0.0

    def step(self, steps_done_before: int, step: int, message: str) -> None:
        done = steps_done_before + step
        elapsed = time.monotonic() - self.started
        self.fraction = done / self.total_steps
        eta = elapsed / done * (self.total_steps - done) if done else float("nan")
        self.report(self.start + (self.end - self.start) * self.fraction,
                    f"{self.label}{message} · ETA {_format_eta(eta)}")

    def say(self, message: str) -> None:
        """Report `message` where the bar stands (evaluation adds no steps, but a cancel is heard)."""
        self.report(self.start + (self.end - self.start) * self.fraction, f"{self.label}{message}")


@dataclass
class FitResult:
    """The outcome of `fit`: the best model's validation evaluation and the epoch history."""

    history: list[EpochLog]
    best_epoch: int
    evaluation: Evaluation
    stopped_early: bool
    resumed_from_epoch: Optional[int]
    train_seconds: float
    train_images: int
    eval_images_per_s: float


def fit(config: TrainConfig, samples: RunSamples, pixels: torch.Tensor, *, out_dir: Path, device: torch.device,
        progress: Optional[ProgressCallback] = None, on_epoch: Optional[EpochCallback] = None,
        resume: bool = False, progress_span: tuple[float, float] = (0.0, 1.0),
        clock: Optional[PhaseClock] = None) -> FitResult:
    """Train on samples.train_index with early stopping on validation loss; the best epoch's evaluation.

    pixels: uint8 (N, S, S, 3) in samples' order. Writes out_dir/last.pt after
    every epoch and makes out_dir/best.pt the same file when validation loss improves (both hold the
    model, optimizer, scheduler and scaler state dicts, the epoch and the history). The best epoch's
    validation evaluation is kept from that epoch; only when it was before a resume is best.pt
    loaded and evaluated again. With `resume`, continues after the epoch stored in out_dir/last.pt
    (when there is one). `clock` gets the seconds spent training, evaluating and checkpointing.
    """
    report = progress or (lambda fraction, message: None)
    clock = clock or PhaseClock()
    num_classes = len(samples.classes)
    placed = place_pixels(pixels, device)
    training = _setup(config, placed, samples.labels, samples.train_index, num_classes, device)
    val_batches = evaluation_batches(placed, samples.labels, samples.val_index, config=config, device=device)
    best_path, last_path = out_dir / BEST_CHECKPOINT, out_dir / LAST_CHECKPOINT
    history: list[EpochLog] = []
    best_loss, best_epoch, since_best, stopped, start_epoch, resumed_from = math.inf, -1, 0, False, 0, None
    if resume and last_path.is_file():
        with clock.phase("checkpoint"):
            state = load_checkpoint(last_path, map_location=device)
        training.model.load_state_dict(state["model"])
        training.optimizer.load_state_dict(state["optimizer"])
        training.scheduler.load_state_dict(state["scheduler"])
        training.scaler.load_state_dict(state["scaler"])
        history = [EpochLog(**entry) for entry in state["history"]]
        best_loss, best_epoch = state["best_val_loss"], state["best_epoch"]
        since_best, stopped = state["epochs_since_best"], state["stopped_early"]
        resumed_from = start_epoch = state["epoch"] + 1
        log.info("resuming after epoch %d from %s", state["epoch"], last_path)
    steps_per_epoch = len(training.train_batches) + len(val_batches)
    tracker = _Progress(report, start=progress_span[0], end=progress_span[1],
                        total_steps=max(config.epochs - start_epoch, 0) * steps_per_epoch, label="")
    train_images, train_seconds, eval_seconds, eval_images = 0, 0.0, 0.0, 0
    best_evaluation: Optional[Evaluation] = None
    clock.training_starts()
    for epoch in range(start_epoch, config.epochs):
        if stopped:
            break
        steps_before = (epoch - start_epoch) * steps_per_epoch
        started = time.perf_counter()
        on_step = lambda step, steps, loss: tracker.step(
            steps_before, step, f"epoch {epoch + 1}/{config.epochs} · step {step}/{steps} · loss {loss:.4f}")
        with clock.phase("train"):
            averages, frozen = _train_epoch(config, training, epoch, on_step)
            lr = training.optimizer.param_groups[0]["lr"]
            training.scheduler.step()
        train_seconds += time.perf_counter() - started
        train_images += averages["images"]
        evaluated = time.perf_counter()
        with clock.phase("evaluate"):
            evaluation = evaluate(training.model, val_batches, autocast_dtype=training.autocast_dtype,
                                  on_batch=lambda done, batches: tracker.say(
                                      f"epoch {epoch + 1}/{config.epochs} · validating, batch {done}/{batches}"))
        eval_seconds += time.perf_counter() - evaluated
        eval_images += len(evaluation.probs)
        entry = EpochLog(epoch, averages["loss"], averages["accuracy"], evaluation.loss, evaluation.accuracy, lr,
                         time.perf_counter() - started, frozen)
        history.append(entry)
        improved = evaluation.loss < best_loss - config.min_delta
        if improved:
            best_loss, best_epoch, since_best, best_evaluation = evaluation.loss, epoch, 0, evaluation
        else:
            since_best += 1
        stopped = bool(config.patience) and since_best >= config.patience and epoch + 1 < config.epochs
        with clock.phase("checkpoint"):
            state = {
                "epoch": epoch, "model": training.model.state_dict(), "optimizer": training.optimizer.state_dict(),
                "scheduler": training.scheduler.state_dict(), "scaler": training.scaler.state_dict(),
                "history": [asdict(e) for e in history], "best_val_loss": best_loss, "best_epoch": best_epoch,
                "epochs_since_best": since_best, "stopped_early": stopped, "classes": samples.classes,
                "config": config.to_dict(),
            }
            save_checkpoint(last_path, state)
            if improved:
                link_checkpoint(last_path, best_path)
        if on_epoch is not None:
            on_epoch(entry)
        tracker.step(steps_before, steps_per_epoch,
                     f"epoch {epoch + 1}/{config.epochs} · val loss {evaluation.loss:.4f} · val acc {evaluation.accuracy:.3f}")
    if not best_path.is_file():
        raise RuntimeError(f"no best checkpoint in {out_dir}: no epoch was trained")
    if best_evaluation is None:  # the best epoch was trained before the resume
        with clock.phase("checkpoint"):
            training.model.load_state_dict(load_checkpoint(best_path, map_location=device)["model"])
        evaluated = time.perf_counter()
        with clock.phase("evaluate"):
            best_evaluation = evaluate(training.model, val_batches, autocast_dtype=training.autocast_dtype)
        eval_seconds += time.perf_counter() - evaluated
        eval_images += len(best_evaluation.probs)
    return FitResult(history, best_epoch, best_evaluation, stopped, resumed_from, train_seconds, train_images,
                     eval_images / eval_seconds if eval_seconds > 0 else float("nan"))


def out_of_fold_pred_probs(config: TrainConfig, samples: RunSamples, pixels: torch.Tensor, *, device: torch.device,
                           progress: Optional[ProgressCallback] = None,
                           progress_span: tuple[float, float] = (0.0, 1.0),
                           clock: Optional[PhaseClock] = None) -> np.ndarray:
    """Probabilities for every sample from a model that never trained on it: shape (N, K), float32.

    Stratified group K-fold (K = config.folds) over all of the run's samples, copies of one photo
    (same content hash) in one fold; each fold
    trains a fresh model for config.epochs epochs (no early stopping: there is no
    separate validation set) and predicts its held-out part. Every fold starts from a copy of one
    new model (the same weights a model built for it would have) and gathers its batches from the
    one decoded `pixels`. `clock` gets each fold's seconds of
    model building (fold_setup), training and evaluation.
    """
    report = progress or (lambda fraction, message: None)
    clock = clock or PhaseClock()
    num_classes = len(samples.classes)
    placed = place_pixels(pixels, device)
    probs = np.zeros((len(samples.labels), num_classes), dtype=np.float32)
    splitter = StratifiedGroupKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    groups = pd.factorize(pd.Series(samples.content_hashes))[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = list(splitter.split(np.zeros(len(samples.labels)), samples.labels, groups))
    span = (progress_span[1] - progress_span[0]) / len(folds)
    start_model: Optional[nn.Module] = None
    for fold, (train_index, held_out) in enumerate(folds):
        with clock.phase("fold_setup", fold=fold):
            start_model = start_model or new_model(config, num_classes, device)
            training = _setup(config, placed, samples.labels, train_index, num_classes, device, start=start_model)
        start = progress_span[0] + fold * span
        tracker = _Progress(report, start=start, end=start + span,
                            total_steps=config.epochs * len(training.train_batches),
                            label=f"fold {fold + 1}/{len(folds)} · ")
        for epoch in range(config.epochs):
            steps_before = epoch * len(training.train_batches)
            with clock.phase("train", fold=fold):
                _train_epoch(config, training, epoch, lambda step, steps, loss: tracker.step(
                    steps_before, step, f"epoch {epoch + 1}/{config.epochs} · loss {loss:.4f}"))
                training.scheduler.step()
        held_out_batches = evaluation_batches(placed, samples.labels, held_out, config=config, device=device)
        with clock.phase("evaluate", fold=fold):
            probs[held_out] = evaluate(training.model, held_out_batches, autocast_dtype=training.autocast_dtype,
                                       on_batch=lambda done, batches: tracker.say(
                                           f"predicting held-out photos, batch {done}/{batches}")).probs
    return probs
