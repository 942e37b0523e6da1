"""Torchvision classifiers to fine-tune: the backbone with a new head, its offline ImageNet weights, the device.

Weights are never downloaded: a missing file raises `WeightsUnavailable`. Mixed precision (`amp_dtype`,
`autocast`) only on CUDA.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torchvision
from torch import nn

from core.models.embeddings import get_backbone as frozen_backbone
from core.models.embeddings import weights_path


@dataclass(frozen=True)
class Backbone:
    """A torchvision classifier: its builder and the name of its head module.

    Its ImageNet weights (name and file) are those of the same-named backbone in core.models.embeddings.
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
    return weights_path(frozen_backbone(name))


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
    model = backbone.build(weights=frozen_backbone(name).weights if pretrained else None)
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


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
