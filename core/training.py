"""Train an image classifier on a dataset's current labels and evaluate it per class.

`main(config, samples, ...)` runs one training run: it decodes the images once
(core.models.data), splits them into train/validation stratified by folder class,
fine-tunes a torchvision backbone with a new head, keeps the best and last
checkpoints, and evaluates the best one. With `folds >= 2` it also trains K models
to produce out-of-fold probabilities for every sample (the mislabel check's
`pred_probs`). The pieces (`build_model`, `train_one_epoch`, `evaluate`, `fit`)
are usable on their own. Nothing here prints: progress goes to a callback.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torchvision
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from core import features
from core.audit.evidence.folds import duplicate_groups
from core.models.metrics import classification_report
from core.models.config import TrainConfig
from core.models.data import Augmentation, MemoryBatches, load_images, place_pixels

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]
EpochCallback = Callable[["EpochLog"], None]

BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"
CONFIG_FILE = "config.json"
SAMPLES_FILE = "samples.json"
OOF_PROBS_FILE = "oof_pred_probs.npy"
OOF_IDS_FILE = "oof_sample_ids.npy"
OOF_CLASSES_FILE = "oof_classes.json"
#: Which database and run a run folder belongs to (see claim_run_folder).
OWNER_FILE = "run.json"
#: Keys of the owner record that must match for a run to use a folder.
OWNER_KEYS = ("database_id", "run_id")
#: Files a run resumes from; another run must neither resume from them nor overwrite them.
RUN_STATE_FILES = (LAST_CHECKPOINT, BEST_CHECKPOINT, SAMPLES_FILE)
#: Steps between progress reports (each report reads the running loss, a GPU sync).
LOG_EVERY_STEPS = 10
#: Share of the progress bar given to decoding images.
DECODE_SHARE = 0.1


# --- backbones ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backbone:
    """A torchvision classifier: its builder and the name of its head module.

    Its ImageNet weights (name and file) are those of the same-named backbone in core.features.
    """

    build: Callable[..., nn.Module]
    head: str  # top-level child holding the final Linear layer

    def replace_head(self, model: nn.Module, num_classes: int) -> None:
        module = getattr(model, self.head)
        if isinstance(module, nn.Linear):
            setattr(model, self.head, nn.Linear(module.in_features, num_classes))
        else:  # a Sequential(Dropout, Linear)
            module[-1] = nn.Linear(module[-1].in_features, num_classes)


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone(torchvision.models.mobilenet_v2, "classifier"),
    "resnet18": Backbone(torchvision.models.resnet18, "fc"),
    "resnet50": Backbone(torchvision.models.resnet50, "fc"),
    "efficientnet_b0": Backbone(torchvision.models.efficientnet_b0, "classifier"),
}


class WeightsUnavailable(ValueError):
    """The pretrained weights of a backbone are not on this machine (they are never downloaded at run time)."""


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; backbones are: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def weights_file(name: str) -> Path:
    """Where torch hub keeps backbone `name`'s ImageNet weights file."""
    get_backbone(name)
    return features.weights_path(features.get_backbone(name))


def weights_available(name: str) -> bool:
    """Whether backbone `name`'s pretrained weights are on disk (so loading them needs no network)."""
    return weights_file(name).is_file()


def build_model(name: str, num_classes: int, *, pretrained: bool = True) -> nn.Module:
    """A torchvision backbone with a new `num_classes`-way head; ImageNet weights when `pretrained`.

    Raises WeightsUnavailable when the weights file is missing instead of downloading it.
    """
    backbone = get_backbone(name)
    if pretrained and not weights_available(name):
        available = [n for n in BACKBONES if weights_available(n)]
        raise WeightsUnavailable(
            f"the ImageNet weights of {name} are not on this machine (expected {weights_file(name)}); "
            f"use a backbone whose weights are installed ({', '.join(available) or 'none'}) "
            f"or train from scratch (--pretrained none)"
        )
    model = backbone.build(weights=features.get_backbone(name).weights if pretrained else None)
    backbone.replace_head(model, num_classes)
    return model


def set_backbone_frozen(model: nn.Module, name: str, frozen: bool) -> None:
    """Freeze (or unfreeze) every parameter outside the head.

    Frozen layers also stay in eval mode so batch norm keeps its pretrained statistics.
    Call after `model.train()`.
    """
    head = get_backbone(name).head
    for child_name, child in model.named_children():
        if child_name == head:
            continue
        child.requires_grad_(not frozen)
        if frozen:
            child.eval()


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})"


def amp_dtype(device: torch.device, enabled: bool) -> Optional[torch.dtype]:
    """The autocast dtype on CUDA (bfloat16 where supported, else float16); None = full precision."""
    if device.type != "cuda" or not enabled:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# --- samples and split ----------------------------------------------------------------------------


def _split_key(seed: int, sample_id: int) -> str:
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()


def stratified_split(sample_ids: Sequence[int], strata: Sequence[str], *, val_fraction: float, seed: int) -> np.ndarray:
    """Which samples are validation samples: bool mask, shape (N,).

    Within each stratum, samples are ranked by a hash of (seed, sample id) and the
    first round(val_fraction * n) go to validation (at least one when the
    stratum has two or more samples, none when it has one). A sample's side
    depends only on its id, its stratum's size and the seed, so runs on the same
    samples get the same split whatever their labels are now.
    """
    sample_ids = np.asarray(sample_ids, dtype=np.int64)
    strata = np.asarray(strata, dtype=object)
    is_val = np.zeros(len(sample_ids), dtype=bool)
    for stratum in sorted(set(strata.tolist())):
        positions = np.flatnonzero(strata == stratum)
        if len(positions) < 2:
            continue
        ranked = sorted(positions, key=lambda p: _split_key(seed, int(sample_ids[p])))
        count = min(max(int(round(val_fraction * len(positions))), 1), len(positions) - 1)
        is_val[ranked[:count]] = True
    return is_val


@dataclass
class RunSamples:
    """What a run trains on, in a fixed order, and its split. Saved with the run (samples.json) for resuming.

    labels: indices into classes, shape (N,); train_index, val_index: positions into the arrays.
    skipped: sample id -> why it was left out although usable in the database (could not be decoded).
    """

    classes: list[str]
    sample_ids: np.ndarray
    paths: list[str]
    content_hashes: list[str]
    labels: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    skipped: dict[int, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({
            "classes": self.classes, "sample_ids": self.sample_ids.tolist(), "paths": self.paths,
            "content_hashes": self.content_hashes, "labels": self.labels.tolist(),
            "train_index": self.train_index.tolist(), "val_index": self.val_index.tolist(),
            "skipped": {str(k): v for k, v in self.skipped.items()},
        }))

    @classmethod
    def load(cls, path: Path) -> "RunSamples":
        data = json.loads(path.read_text())
        return cls(
            classes=data["classes"], sample_ids=np.asarray(data["sample_ids"], dtype=np.int64), paths=data["paths"],
            content_hashes=data["content_hashes"], labels=np.asarray(data["labels"], dtype=np.int64),
            train_index=np.asarray(data["train_index"], dtype=np.int64),
            val_index=np.asarray(data["val_index"], dtype=np.int64),
            skipped={int(k): v for k, v in data["skipped"].items()},
        )

    def split(self) -> dict[str, list[int]]:
        """Sample ids on each side: {"train": [...], "val": [...]}."""
        return {"train": self.sample_ids[self.train_index].tolist(), "val": self.sample_ids[self.val_index].tolist()}


def usable_samples(samples: pd.DataFrame, classes: Sequence[str]) -> pd.Series:
    """Bool per row: not deleted, readable, hashed, and labelled with one of `classes`."""
    return (~samples["deleted"] & samples["readable"] & samples["content_hash"].notna()
            & samples["current_label"].isin(list(classes)))


def keep_groups_together(is_val: np.ndarray, sample_ids: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """`is_val` (bool (N,)) with every group (int (N,)) moved to the side of its lowest sample id, so
    copies of one photo are never on both sides of a split."""
    order = np.lexsort((sample_ids, groups))
    first_of_group = pd.Series(is_val[order]).groupby(groups[order], sort=False).transform("first").to_numpy()
    together = np.empty_like(is_val)
    together[order] = first_of_group
    return together


def select_samples(samples: pd.DataFrame, classes: Sequence[str], *, val_fraction: float, seed: int) -> RunSamples:
    """The run's samples and split from a dataset's current state (db.queries.samples_frame columns).

    With an `evaluation` column (bool: the dataset's evaluation split, db.evaluation) validation is
    exactly the listings it marks, so every such run scores on the same images. Without one the split
    is drawn over all present samples stratified by folder class with `seed`, so relabelling or
    deleting a sample never moves other samples across it; copies of one photo (exact, or near by
    pHash: core.audit.evidence.folds.duplicate_groups) then go to the side of the copy with the lowest id,
    so a re-upload never validates its own original. Deleted, unreadable and unlabelled samples are
    left out. Labels are the current ones.
    """
    if "evaluation" in samples:
        is_val = samples["evaluation"].fillna(False).to_numpy(dtype=bool)
    else:
        is_val = stratified_split(samples["id"], samples["label"], val_fraction=val_fraction, seed=seed)
        is_val = keep_groups_together(is_val, samples["id"].to_numpy(dtype=np.int64), duplicate_groups(samples))
    keep = usable_samples(samples, classes).to_numpy()
    chosen = samples[keep]
    lookup = {name: index for index, name in enumerate(classes)}
    positions = np.arange(len(chosen))
    return RunSamples(
        classes=list(classes), sample_ids=chosen["id"].to_numpy(dtype=np.int64), paths=chosen["path"].tolist(),
        content_hashes=chosen["content_hash"].tolist(),
        labels=chosen["current_label"].map(lookup).to_numpy(dtype=np.int64),
        train_index=positions[~is_val[keep]], val_index=positions[is_val[keep]],
    )


def _without_failed(samples: RunSamples, failed: dict[int, str]) -> tuple[RunSamples, np.ndarray]:
    """Drop positions that could not be decoded; returns the smaller RunSamples and the kept positions."""
    kept = np.array([p for p in range(len(samples.sample_ids)) if p not in failed], dtype=np.int64)
    new_position = {int(old): new for new, old in enumerate(kept)}
    reindex = lambda index: np.array([new_position[int(p)] for p in index if int(p) in new_position], dtype=np.int64)
    skipped = {**samples.skipped, **{int(samples.sample_ids[p]): reason for p, reason in failed.items()}}
    return RunSamples(
        classes=samples.classes, sample_ids=samples.sample_ids[kept], paths=[samples.paths[p] for p in kept],
        content_hashes=[samples.content_hashes[p] for p in kept], labels=samples.labels[kept],
        train_index=reindex(samples.train_index), val_index=reindex(samples.val_index), skipped=skipped,
    ), kept


def _check_trainable(samples: RunSamples) -> None:
    if len(samples.train_index) < 2 or len(samples.val_index) < 1:
        raise ValueError(
            f"too few usable samples to train: {len(samples.train_index)} for training and "
            f"{len(samples.val_index)} for validation (need at least 2 and 1)"
        )
    if len(np.unique(samples.labels[samples.train_index])) < 2:
        raise ValueError("the training samples all have one label: a classifier needs at least two classes")


# --- where a run's time goes ----------------------------------------------------------------------

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


# --- metric logging -------------------------------------------------------------------------------


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


# --- the loop -------------------------------------------------------------------------------------


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


StepCallback = Callable[[int, int, float], None]  # (steps done, steps in epoch, running loss)


def train_one_epoch(model: nn.Module, batches: MemoryBatches, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    *, epoch: int, scaler: torch.amp.GradScaler, autocast_dtype: Optional[torch.dtype] = None,
                    on_step: Optional[StepCallback] = None) -> dict[str, float]:
    """One pass over the training batches; returns {"loss", "accuracy"} averaged over the images seen, and "images".

    The caller puts the model in training mode (and may keep frozen parts in eval mode).
    """
    logger = MetricLogger()
    steps = len(batches)
    for step, (images, labels) in enumerate(batches.epoch(epoch), start=1):
        with _autocast(images.device, autocast_dtype):
            logits = model(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        count = labels.shape[0]
        logger.update(count, loss=loss.detach().float() * count, accuracy=(logits.argmax(1) == labels).sum())
        if on_step is not None and (step % LOG_EVERY_STEPS == 0 or step == steps):
            on_step(step, steps, logger.averages()["loss"])
    return {**logger.averages(), "images": logger.meters["loss"].count}


@torch.inference_mode()
def evaluate(model: nn.Module, batches: MemoryBatches, *, autocast_dtype: Optional[torch.dtype] = None) -> Evaluation:
    """Mean cross-entropy, accuracy and softmax probabilities over `batches` (sequential order).

    Outputs of padding images (a padded last batch has more images than labels) are dropped.
    """
    model.eval()
    logger = MetricLogger()
    probs = []
    for images, labels in batches.epoch(0):
        with _autocast(images.device, autocast_dtype):
            logits = model(images)
        logits = logits[: labels.shape[0]].float()
        count = labels.shape[0]
        logger.update(count, loss=nn.functional.cross_entropy(logits, labels, reduction="sum"),
                      accuracy=(logits.argmax(1) == labels).sum())
        probs.append(logits.softmax(1))
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

    def step(self, steps_done_before: int, step: int, message: str) -> None:
        done = steps_done_before + step
        elapsed = time.monotonic() - self.started
        fraction = done / self.total_steps
        eta = elapsed / done * (self.total_steps - done) if done else float("nan")
        self.report(self.start + (self.end - self.start) * fraction, f"{self.label}{message} · ETA {_format_eta(eta)}")


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


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def _link_checkpoint(source: Path, path: Path) -> None:
    """Make `path` hold what `source` holds: a hard link (nothing written again), or a copy where links are
    not supported. `path` is replaced in one step; a later replacement of `source` leaves it as it is."""
    temporary = path.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `fit` (plain tensors, numbers and lists only: loaded with weights_only=True)."""
    return torch.load(path, map_location=map_location, weights_only=True)


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
            evaluation = evaluate(training.model, val_batches, autocast_dtype=training.autocast_dtype)
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
            _save_checkpoint(last_path, state)
            if improved:
                _link_checkpoint(last_path, best_path)
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


# --- out-of-fold probabilities --------------------------------------------------------------------


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
            probs[held_out] = evaluate(training.model, held_out_batches, autocast_dtype=training.autocast_dtype).probs
    return probs


def save_out_of_fold(out_dir: Path, sample_ids: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, str]:
    """Write oof_pred_probs.npy (N, K), oof_sample_ids.npy (N,) and oof_classes.json; returns their paths."""
    paths = {"pred_probs": out_dir / OOF_PROBS_FILE, "sample_ids": out_dir / OOF_IDS_FILE,
             "classes": out_dir / OOF_CLASSES_FILE}
    np.save(paths["pred_probs"], probs.astype(np.float32), allow_pickle=False)
    np.save(paths["sample_ids"], np.asarray(sample_ids, dtype=np.int64), allow_pickle=False)
    paths["classes"].write_text(json.dumps(list(classes)))
    return {name: str(path) for name, path in paths.items()}


def load_out_of_fold(run_dir: str | os.PathLike, sample_ids: Sequence[int], *,
                     classes: Optional[Sequence[str]] = None) -> np.ndarray:
    """Out-of-fold probabilities of a run aligned to `sample_ids`: float32, shape (len(sample_ids), K).

    Columns follow the run's classes; passing `classes` checks they are the
    same (the audit's class order). Raises KeyError when a sample has no
    out-of-fold row (it was not part of that run).
    """
    folder = Path(run_dir)
    probs = np.load(folder / OOF_PROBS_FILE, allow_pickle=False)
    stored_ids = np.load(folder / OOF_IDS_FILE, allow_pickle=False)
    stored_classes = json.loads((folder / OOF_CLASSES_FILE).read_text())
    if classes is not None and list(classes) != stored_classes:
        raise ValueError(f"the run's classes {stored_classes} differ from {list(classes)}")
    row_of = {int(sample_id): row for row, sample_id in enumerate(stored_ids)}
    missing = [int(s) for s in sample_ids if int(s) not in row_of]
    if missing:
        raise KeyError(f"{len(missing)} samples have no out-of-fold probabilities in {folder} (e.g. id {missing[0]})")
    return probs[[row_of[int(s)] for s in sample_ids]]


# --- one run --------------------------------------------------------------------------------------


class ForeignRunFolder(ValueError):
    """A run folder that belongs to another run (of another database, or with another id)."""


def _describe_owner(owner: dict[str, Any]) -> str:
    return f"run {owner.get('run_id')} of database {owner.get('database') or owner.get('database_id')}"


def claim_run_folder(out_dir: Path, owner: dict[str, Any]) -> None:
    """Check that `out_dir` is the folder of the run `owner` names, recording the owner there on first use.

    owner: {"database_id": str, "run_id": int, ...}; only OWNER_KEYS are compared,
    other keys (the database's path) are kept for people to read. Raises
    ForeignRunFolder when the folder's owner record names another database or run,
    or when the folder holds a checkpoint or samples but no owner record (a run
    made before records were kept, or files copied in): whose they are cannot be told.
    """
    record = out_dir / OWNER_FILE
    if not record.is_file():
        leftovers = [name for name in RUN_STATE_FILES if (out_dir / name).exists()]
        if leftovers:
            raise ForeignRunFolder(f"{out_dir} holds {', '.join(leftovers)} but no {OWNER_FILE} saying whose they "
                                   f"are; refusing to resume from or overwrite them: start a new run")
        record.write_text(json.dumps(owner, indent=2))
        return
    try:
        stored = json.loads(record.read_text())
    except ValueError as error:
        raise ForeignRunFolder(f"cannot read {record} ({error}); start a new run") from error
    if not isinstance(stored, dict):
        stored = {}
    if any(stored.get(key) != owner[key] for key in OWNER_KEYS):
        raise ForeignRunFolder(f"{out_dir} belongs to {_describe_owner(stored)}, not to {_describe_owner(owner)}; "
                               f"refusing to use its checkpoint")


def _prepare(config: TrainConfig, samples: pd.DataFrame, classes: Sequence[str], root: Path, out_dir: Path,
             cache_dir: Path, resume: bool, report: ProgressCallback,
             clock: PhaseClock) -> tuple[RunSamples, torch.Tensor]:
    """The run's samples (new, or stored ones when resuming) and their decoded pixels."""
    stored = out_dir / SAMPLES_FILE
    decode_progress = lambda fraction, message: report(fraction * DECODE_SHARE, message)
    if resume and stored.is_file():
        chosen = RunSamples.load(stored)
        with clock.phase("decode"):
            decoded = load_images(root, chosen.paths, chosen.content_hashes, size=config.image_size,
                                  cache_dir=cache_dir, workers=config.decode_workers, progress=decode_progress)
        if decoded.failed:
            position, reason = next(iter(decoded.failed.items()))
            raise ValueError(f"{len(decoded.failed)} images of the run can no longer be decoded "
                             f"(e.g. {chosen.paths[position]}: {reason}); start a new run")
        return chosen, decoded.pixels
    chosen = select_samples(samples, classes, val_fraction=config.val_fraction, seed=config.seed)
    with clock.phase("decode"):
        decoded = load_images(root, chosen.paths, chosen.content_hashes, size=config.image_size,
                              cache_dir=cache_dir, workers=config.decode_workers, progress=decode_progress)
        pixels = decoded.pixels
        if decoded.failed:
            log.warning("%d images could not be decoded and are left out", len(decoded.failed))
            chosen, kept = _without_failed(chosen, decoded.failed)
            pixels = pixels[torch.as_tensor(kept)]
    _check_trainable(chosen)
    chosen.save(stored)
    return chosen, pixels


def main(config: TrainConfig, samples: pd.DataFrame, classes: Sequence[str], root: str | os.PathLike, *,
         progress: Optional[ProgressCallback] = None, on_epoch: Optional[EpochCallback] = None,
         resume: bool = False, owner: Optional[dict[str, Any]] = None,
         clock: Optional[PhaseClock] = None) -> dict[str, Any]:
    """Run one training run and return its JSON-able result.

    samples: the dataset's current state with db.queries.samples_frame columns
    (id, path, label = folder class, current_label, deleted, readable, content_hash).
    classes: the dataset's sorted class names (the model's outputs, in order).
    config.out_dir and config.cache_dir must be set. owner: the database and run
    this is (see claim_run_folder), checked against the folder before anything
    is read from or written to it; None when the caller owns the folder outright
    (scripts, tests). Result keys: config, device,
    classes, metrics (core.models.metrics.classification_report of the best checkpoint),
    history, best_epoch, stopped_early, resumed_from_epoch, split {train, val}
    (sample ids), validation {sample_ids, true, pred, confidence}, samples
    {used, train, val, skipped}, checkpoints, out_dir, out_of_fold (paths or None),
    throughput {train_images_per_s, eval_images_per_s}, seconds (wall), phases (PhaseClock.phases:
    seconds per phase, adding up to the wall seconds) and fold_phases (PhaseClock.fold_phases).
    clock: started by the caller when its own start-up (imports) should count; else started here.
    """
    if config.out_dir is None or config.cache_dir is None:
        raise ValueError("config.out_dir and config.cache_dir must be set")
    config.validate()
    clock = clock or PhaseClock()
    report = progress or (lambda fraction, message: None)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        claim_run_folder(out_dir, owner)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
    device = pick_device(config.device)
    clock.device = device
    if device.type == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)  # this process trains; on a busy machine fewer threads are faster
    chosen, pixels = _prepare(config, samples, classes, Path(root), out_dir, Path(config.cache_dir), resume, report,
                              clock)
    with clock.phase("decode"):
        pixels = place_pixels(pixels, device)
    fit_end = DECODE_SHARE + (1 - DECODE_SHARE) / (1 + (config.folds or 0))
    result = fit(config, chosen, pixels, out_dir=out_dir, device=device, progress=report, on_epoch=on_epoch,
                 resume=resume, progress_span=(DECODE_SHARE, fit_end), clock=clock)
    out_of_fold = None
    if config.folds >= 2:
        probs = out_of_fold_pred_probs(config, chosen, pixels, device=device, progress=report,
                                       progress_span=(fit_end, 1.0), clock=clock)
        with clock.phase("checkpoint"):
            out_of_fold = save_out_of_fold(out_dir, chosen.sample_ids, probs, chosen.classes)
    y_true = chosen.labels[chosen.val_index]
    y_pred = result.evaluation.probs.argmax(1)
    metrics = classification_report(y_true, y_pred, chosen.classes)
    report(1.0, f"validation accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_avg']['f1']:.3f}")
    phases, wall_seconds = clock.phases()
    return {
        "config": config.to_dict(),
        "device": describe_device(device),
        "classes": list(chosen.classes),
        "metrics": metrics,
        "history": [asdict(entry) for entry in result.history],
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from_epoch,
        "split": chosen.split(),
        "validation": {
            "sample_ids": chosen.sample_ids[chosen.val_index].tolist(),
            "true": y_true.tolist(),
            "pred": y_pred.tolist(),
            "confidence": result.evaluation.probs.max(1).round(4).tolist(),
        },
        "samples": {"used": len(chosen.sample_ids), "train": len(chosen.train_index), "val": len(chosen.val_index),
                    "skipped": {str(k): v for k, v in chosen.skipped.items()}},
        "checkpoints": {"best": str(out_dir / BEST_CHECKPOINT), "last": str(out_dir / LAST_CHECKPOINT)},
        "out_dir": str(out_dir),
        "out_of_fold": out_of_fold,
        "throughput": {
            "train_images_per_s": result.train_images / result.train_seconds if result.train_seconds else None,
            "eval_images_per_s": result.eval_images_per_s,
        },
        "seconds": wall_seconds,
        "phases": phases,
        "fold_phases": clock.fold_phases(),
    }
