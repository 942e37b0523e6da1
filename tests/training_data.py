"""A tiny real dataset for the training tests (3 classes x 6 JPEGs of 40x48 px, one broken file) and fast settings.

Training tests run on CPU with one torch thread (the test machines have two shared
cores; OpenMP spinning on a busy core makes two threads many times slower) and a
MobileNetV2 from scratch at 32 px, one epoch unless a test needs more.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from core.imaging import sha256_hex
from core.models.config import TrainConfig
from jobs.runner import create_job
from jobs.scan import scan_dataset

CLASSES = ("bag", "dress", "shoe")
IMAGES_PER_CLASS = 6
BROKEN_PATH = "shoe/broken.jpg"
#: Each class is tinted its own colour so that a model can learn something in a few steps.
TINT = {"bag": (200, 60, 60), "dress": (60, 200, 60), "shoe": (60, 60, 200)}
FAST_CONFIG: dict[str, Any] = {
    "backbone": "mobilenet_v2", "pretrained": False, "image_size": 32, "epochs": 1, "batch_size": 4,
    "decode_workers": 1,
}


def write_training_images(root: Path) -> Path:
    """Write <class>/<class>-<i>.jpg images (tinted noise) and one unreadable file under `root`; returns root."""
    rng = np.random.default_rng(0)
    for label in CLASSES:
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(IMAGES_PER_CLASS):
            noise = rng.integers(0, 60, size=(48, 40, 3))
            pixels = np.clip(np.array(TINT[label]) + noise - 30, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{label}-{index}.jpg", quality=90)
    (root / BROKEN_PATH).write_bytes(b"<html>not a photo</html>")
    return root


def scanned_dataset(factory: sessionmaker[Session], root: Path) -> int:
    """Write the tiny dataset under `root`, scan it, return its dataset id."""
    return scan_dataset(factory, write_training_images(root), workers=1)["dataset_id"]


def create_train_job(factory: sessionmaker[Session], dataset_id: int, **config: Any) -> int:
    """A queued train job with FAST_CONFIG overridden by `config`; returns its id."""
    with factory.begin() as session:
        return create_job(session, dataset_id, "train", {"config": {**FAST_CONFIG, **config}}).id


@pytest.fixture
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def samples_table(root) -> pd.DataFrame:
    """The tiny dataset as db.queries.samples_frame would give it (ids 1.., no corrections)."""
    rows = []
    for path in sorted(p for p in root.rglob("*.jpg")):
        relative = path.relative_to(root).as_posix()
        readable = not relative.endswith("broken.jpg")
        rows.append({"id": len(rows) + 1, "path": relative, "label": relative.split("/")[0],
                     "current_label": relative.split("/")[0], "deleted": False, "readable": readable,
                     "content_hash": sha256_hex(path.read_bytes()) if readable else None})
    return pd.DataFrame(rows)


@pytest.fixture
def tiny(tmp_path):
    root = write_training_images(tmp_path / "data")
    return root, samples_table(root)


def config_for(tmp_path, **overrides) -> TrainConfig:
    values = {**FAST_CONFIG, "out_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"), **overrides}
    return TrainConfig.from_dict(values)
