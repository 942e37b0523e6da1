"""The epoch loop and evaluation of one model, the way torchvision's classification reference reads:
`train_one_epoch`, `evaluate`, the optimisers and schedulers a config names, and the clock of a run's phases.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from core.models.classifiers import autocast, build_model
from core.models.config import TrainConfig
from core.models.data import MemoryBatches

EpochCallback = Callable[["EpochLog"], None]
#: Steps between reads of the running loss (each read is a GPU sync). Progress is reported after every step,
#: so a cancel request is heard within a step (at 2 cores ten steps of a 5,000-photo run took about 29 s).
LOG_EVERY_STEPS = 10



#: Phases timed as blocks (PhaseClock.phase).
TIMED_PHASES = ("decode", "train", "evaluate", "checkpoint", "fold_setup")
#: Every phase of a run's `phases`, in the order a run goes through them; they add up to its wall time.
PHASES = ("startup", *TIMED_PHASES, "other")


class PhaseClock:
    """Seconds a run spends in each of PHASES, timed with time.perf_counter.

    `phase(name)` times a block of one of TIMED_PHASES (decode: decoding images and placing them
    on the device; train; evaluate; checkpoint: writing and reading checkpoints and out-of-fold
    files; fold_setup: building each fold's model). On CUDA the device is synchronised at both
    ends of a block, so GPU work is counted in the phase that queued it. Time in no block counts
    as "startup" until `training_starts()` (imports, reading the dataset, building the model,
    loading its weights) and as "other" after it (progress and epoch records, metrics).
    With `fold`, a block's seconds are also kept per fold (`fold_phases`).
    """

    def __init__(self, started: Optional[float] = None) -> None:
        self.started = time.perf_counter() if started is None else started
        self.device: Optional[torch.device] = None
        self.seconds: dict[str, float] = dict.fromkeys(TIMED_PHASES, 0.0)
        self.folds: list[dict[str, float]] = []
        self._training_started: Optional[tuple[float, float]] = None  # (when, seconds in blocks by then)

    def _now(self) -> float:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str, *, fold: Optional[int] = None):
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; timed phases are: {', '.join(TIMED_PHASES)}")
        begun = self._now()
        try:
            yield
        finally:
            elapsed = self._now() - begun
            self.seconds[name] += elapsed
            if fold is not None:
                self.folds.extend({} for _ in range(fold + 1 - len(self.folds)))
                self.folds[fold][name] = self.folds[fold].get(name, 0.0) + elapsed

    def training_starts(self) -> None:
        """Mark the end of start-up: the first training batch comes next (only the first call counts)."""
        if self._training_started is None:
            self._training_started = (self._now(), sum(self.seconds.values()))

    def phases(self) -> tuple[dict[str, float], float]:
        """Seconds per phase (PHASES order, rounded to the millisecond) and the wall seconds since `started`."""
        now = self._now()
        in_blocks = sum(self.seconds.values())
        mark, in_blocks_before = self._training_started or (now, in_blocks)
        phases = {"startup": max(mark - self.started - in_blocks_before, 0.0), **self.seconds,
                  "other": max(now - mark - (in_blocks - in_blocks_before), 0.0)}
        return {name: round(seconds, 3) for name, seconds in phases.items()}, round(now - self.started, 3)

    def fold_phases(self) -> list[dict[str, float]]:
        """Per fold: seconds of each timed phase the fold went through, rounded to the millisecond."""
        return [{name: round(seconds, 3) for name, seconds in fold.items()} for fold in self.folds]


class RunningAverage:
    """Average of a per-sample quantity. Sums may be device tensors; they are read (one sync) only on `value`."""

    def __init__(self) -> None:
        self.total: float | torch.Tensor = 0.0
        self.count = 0

    def update(self, total: float | torch.Tensor, count: int) -> None:
        self.total = self.total + total
        self.count += count

    @property
    def value(self) -> float:
        return float(self.total) / self.count if self.count else float("nan")


class MetricLogger:
    """Running averages by name: `update(count, loss=sum_of_losses, correct=number_right)`."""

    def __init__(self) -> None:
        self.meters: dict[str, RunningAverage] = {}

    def update(self, count: int, **totals: float | torch.Tensor) -> None:
        for name, total in totals.items():
            self.meters.setdefault(name, RunningAverage()).update(total, count)

    def averages(self) -> dict[str, float]:
        return {name: meter.value for name, meter in self.meters.items()}


@dataclass
class EpochLog:
    """One epoch: mean losses (cross-entropy, nats), accuracies in [0, 1], learning rate, wall seconds."""

    epoch: int  # 0-based
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    backbone_frozen: bool = False


@dataclass
class Evaluation:
    """loss: mean cross-entropy; accuracy in [0, 1]; probs: softmax, float32, shape (N, K) in loader order."""

    loss: float
    accuracy: float
    probs: np.ndarray


StepCallback = Callable[[int, int, float], None]  # (steps done, steps in epoch, running loss as last read)
BatchCallback = Callable[[int, int], None]  # (batches done, batches in all)


def train_one_epoch(model: nn.Module, batches: MemoryBatches, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    *, epoch: int, scaler: torch.amp.GradScaler, autocast_dtype: Optional[torch.dtype] = None,
                    on_step: Optional[StepCallback] = None) -> dict[str, float]:
    """One pass over the training batches; returns {"loss", "accuracy"} averaged over the images seen, and "images".

    The caller puts the model in training mode (and may keep frozen parts in eval mode).
    """
    logger = MetricLogger()
    steps = len(batches)
    loss_so_far = float("nan")
    for step, (images, labels) in enumerate(batches.epoch(epoch), start=1):
        with autocast(images.device, autocast_dtype):
            logits = model(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        count = labels.shape[0]
        logger.update(count, loss=loss.detach().float() * count, accuracy=(logits.argmax(1) == labels).sum())
        if on_step is not None:
            if step == 1 or step % LOG_EVERY_STEPS == 0 or step == steps:
                loss_so_far = logger.averages()["loss"]
            on_step(step, steps, loss_so_far)
    return {**logger.averages(), "images": logger.meters["loss"].count}


@torch.inference_mode()
def evaluate(model: nn.Module, batches: MemoryBatches, *, autocast_dtype: Optional[torch.dtype] = None,
             on_batch: Optional[BatchCallback] = None) -> Evaluation:
    """Mean cross-entropy, accuracy and softmax probabilities over `batches` (sequential order).

    Outputs of padding images (a padded last batch has more images than labels) are dropped. on_batch is
    called after each batch (a progress report, which is where a cancel request is heard).
    """
    model.eval()
    logger = MetricLogger()
    probs = []
    for done, (images, labels) in enumerate(batches.epoch(0), start=1):
        with autocast(images.device, autocast_dtype):
            logits = model(images)
        logits = logits[: labels.shape[0]].float()
        count = labels.shape[0]
        logger.update(count, loss=nn.functional.cross_entropy(logits, labels, reduction="sum"),
                      accuracy=(logits.argmax(1) == labels).sum())
        probs.append(logits.softmax(1))
        if on_batch is not None:
            on_batch(done, len(batches))
    averages = logger.averages()
    return Evaluation(averages["loss"], averages["accuracy"], torch.cat(probs).cpu().numpy())


#: TrainConfig.optimizer -> factory(config, parameters)
def _adam(config: TrainConfig, parameters: Any) -> torch.optim.Optimizer:
    """Adam; with every parameter on CUDA its fused kernel (a few launches per step instead of several per
    tensor: MobileNetV2 has 158 of them). None, not False, elsewhere, so torch keeps its default there."""
    parameters = list(parameters)
    fused = bool(parameters) and all(parameter.is_cuda for parameter in parameters)
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=True if fused else None)


OPTIMIZER_FACTORIES: dict[str, Callable[[TrainConfig, Any], torch.optim.Optimizer]] = {
    "adam": _adam,
    "sgd": lambda config, parameters: torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                                      weight_decay=config.weight_decay, nesterov=config.momentum > 0),
}
#: TrainConfig.scheduler -> factory(config, optimizer); stepped once per epoch
SCHEDULER_FACTORIES: dict[str, Callable[[TrainConfig, torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]] = {
    "cosine": lambda config, optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs),
    "step": lambda config, optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size,
                                                                      gamma=config.gamma),
    "none": lambda config, optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0),
}


def make_criterion(config: TrainConfig, train_labels: np.ndarray, num_classes: int, device: torch.device) -> nn.Module:
    """Cross-entropy; with balance='loss' each class weighs N / (K * count) (classes absent from training weigh 1)."""
    if config.balance != "loss":
        return nn.CrossEntropyLoss()
    counts = np.bincount(train_labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(train_labels) / (num_classes * np.maximum(counts, 1)), 1.0)
    return nn.CrossEntropyLoss(weight=torch.as_tensor(weights, dtype=torch.float32, device=device))


def new_model(config: TrainConfig, num_classes: int, device: torch.device) -> nn.Module:
    """The run's starting model on `device`, in channels-last memory format (faster convolutions on GPU and CPU).

    Seeded with config.seed, so every call gives the same new head.
    """
    torch.manual_seed(config.seed)
    model = build_model(config.backbone, num_classes, pretrained=config.pretrained)
    return model.to(device, memory_format=torch.channels_last)


def evaluation_batches(pixels: torch.Tensor, labels: np.ndarray, index: np.ndarray, *, config: TrainConfig,
                       device: torch.device) -> MemoryBatches:
    """Sequential batches of `index` for `evaluate`; on CUDA the last one is padded to the batch size, so
    every evaluation batch (of every epoch and fold) has the shape cuDNN has already tuned for."""
    return MemoryBatches(pixels, labels, index, batch_size=config.batch_size, device=device,
                         pad=device.type == "cuda")
