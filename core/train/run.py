"""One training run on a dataset's current labels: decode the images once, split, fine-tune, evaluate per class.

`main(config, samples, ...)` decodes the images (core.models.data), splits them into train/validation
(core.models.samples), fine-tunes a torchvision backbone with a new head (core.models.fit), keeps the best
and last checkpoints, and evaluates the best one. With `folds >= 2` it also trains K models to produce
out-of-fold probabilities for every sample. Nothing here prints: progress goes to a callback.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd
import torch

from core.models.checkpoints import (BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, SAMPLES_FILE, claim_run_folder,
                                     save_out_of_fold)
from core.models.classifiers import describe_device, pick_device
from core.models.config import TrainConfig
from core.models.data import load_images, place_pixels
from core.models.fit import fit, out_of_fold_pred_probs
from core.models.loop import EpochCallback, PhaseClock
from core.models.metrics import classification_report
from core.models.samples import RunSamples, check_trainable, select_samples, skipped_text, without_failed
from core.progress import ProgressCallback

log = logging.getLogger(__name__)
#: Share of the progress bar given to decoding images.
DECODE_SHARE = 0.1


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
            log.warning("training images: %s", skipped_text(decoded.failed))
            chosen, kept = without_failed(chosen, decoded.failed)
            pixels = pixels[torch.as_tensor(kept)]
    check_trainable(chosen)
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
