"""Options of a training run: the `TrainConfig` dataclass and the names it accepts.

Kept free of torch so that the command line and the app can build and validate a
config without loading it; core.models.fit does the work.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

#: Backbones core.models.fit can build (torchvision classifiers); mobilenet_v2's ImageNet weights are installed by setup.
BACKBONE_NAMES = ("mobilenet_v2", "resnet18", "resnet50", "efficientnet_b0")
OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("cosine", "step", "none")
BALANCING = ("sampler", "loss", "none")
DEVICES = ("auto", "cpu", "cuda")
#: Which listings a run validates on: the dataset's evaluation split (db.evaluation, shared by every run, so
#: runs compare on the same images) or a split of the run's own, drawn with its seed.
SPLITS = ("dataset", "run")


@dataclass
class TrainConfig:
    """Options of one training run, saved with it as plain JSON (`asdict`)."""

    backbone: str = "mobilenet_v2"
    pretrained: bool = True  # ImageNet weights (False: train from scratch)
    image_size: int = 224  # pixels, square
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4
    scheduler: str = "cosine"  # cosine | step | none (stepped once per epoch)
    step_size: int = 5  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor
    balance: str = "sampler"  # sampler (oversample minority classes) | loss (class-weighted loss) | none
    augment: bool = True  # random resized crop, flip, colour jitter
    freeze_backbone_epochs: int = 0  # train only the head for this many first epochs
    patience: int = 3  # epochs without validation-loss improvement before stopping; 0 never stops early
    min_delta: float = 0.0  # smallest validation-loss decrease that counts as an improvement
    split: str = "dataset"  # dataset (the dataset's evaluation split) | run (drawn with seed and val_fraction)
    val_fraction: float = 0.2  # split="run" only
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    folds: int = 0  # >= 2: also train K models for out-of-fold probabilities of every sample
    out_dir: Optional[str] = None  # checkpoints and run files; the job sets jobs.train.run_dir
    cache_dir: Optional[str] = None  # decoded-image cache; the job sets data/cache/images
    decode_workers: Optional[int] = None  # threads decoding images (default: CPU count)
    cpu_threads: Optional[int] = None  # torch threads when training on CPU (default: torch's, one per core)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """A validated config from a plain dict; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid option."""
        if self.backbone not in BACKBONE_NAMES:
            raise ValueError(f"unknown backbone {self.backbone!r}; backbones are: {', '.join(BACKBONE_NAMES)}")
        for name, value, valid in (("optimizer", self.optimizer, OPTIMIZERS), ("scheduler", self.scheduler, SCHEDULERS),
                                   ("balance", self.balance, BALANCING), ("device", self.device, DEVICES),
                                   ("split", self.split, SPLITS)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(valid)}")
        positive = {"image_size": self.image_size, "epochs": self.epochs, "batch_size": self.batch_size,
                    "lr": self.lr, "step_size": self.step_size}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.freeze_backbone_epochs < 0 or self.patience < 0 or self.weight_decay < 0:
            raise ValueError("freeze_backbone_epochs, patience and weight_decay cannot be negative")
        if self.freeze_backbone_epochs and not self.pretrained:
            raise ValueError("freezing the backbone only makes sense with pretrained weights")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be at least 1, got {self.cpu_threads}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds must be 0 (off) or at least 2, got {self.folds}")
