"""One end-to-end check of the training and embedding paths, sized for a GPU machine (under 5 minutes).

Usage: bash bench/gpu_check.sh [--small] [--out FILE_OR_DIR] [--per-class N]

Four sections, printed as one table and written as JSON (to --out, or $OUT/gpu_check.json):
  loops      bench/train.py's loop comparison at 224 px: our decode-once loop against ImageFolder +
             DataLoader, training and evaluation images/s and the GPU's busy share while training;
  train      `listing-audit train` on a demo dataset: wall seconds, seconds per phase (metrics --format
             json), and how the wall compares with training plus evaluation;
  folds      the same with --folds 5;
  embedding  the audit's photo embedding (core.models.embeddings.embed_images, the photo member's view and size)
             over the dataset's photos, images/s.
The dataset is `listing-audit demo` (photos style); where the demo's source images are not installed,
generated photo-like JPEGs (bench/train.py write_jpegs) stand in. Pretrained weights are used when
installed; without them the training sections train from scratch and the embedding section is skipped.
`--small` runs every section on the CPU with tiny sizes (the test suite's check): about a minute on two
busy cores, most of it three processes loading torch.
Nothing here needs the network.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OUT_FILE_NAME = "gpu_check.json"


@dataclass(frozen=True)
class Sizes:
    """How big each section is: the full check (a GPU machine) or --small (the CPU, in the test suite)."""

    device: str
    loop_images: int
    loop_source_size: int
    loop_image_size: int
    loop_batch_size: int
    loop_epochs: int
    per_class: int
    train_options: tuple[str, ...]
    train_epochs: int
    fold_epochs: int
    folds: int
    embed_repeats: int  # the dataset's photos are embedded this many times over ("a few thousand" images)
    threads: Optional[int]


FULL = Sizes(device="auto", loop_images=2048, loop_source_size=480, loop_image_size=224, loop_batch_size=128,
             loop_epochs=2, per_class=120, train_options=(), train_epochs=8, fold_epochs=6, folds=5,
             embed_repeats=3, threads=None)
SMALL = Sizes(device="cpu", loop_images=24, loop_source_size=96, loop_image_size=32, loop_batch_size=8,
              loop_epochs=1, per_class=8, train_options=("--image-size", "32", "--batch-size", "8"),
              train_epochs=1, fold_epochs=1, folds=5, embed_repeats=1, threads=1)


def cli(*args: str, env: dict[str, str]) -> tuple[str, float]:
    """`listing-audit ARGS` in a process of its own: its stdout and wall seconds. A failure raises with its stderr."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"listing-audit {' '.join(args[:3])} ... exited {done.returncode}: "
                           f"{done.stderr.strip()[-2000:]}")
    return done.stdout, seconds


def loop_comparison(sizes: Sizes) -> dict[str, Any]:
    """bench/train.py's comparison, in this process: our loop and the plain one, images/s, and the speed-ups."""
    from bench.train import compare_loops, parse_args

    workers = 1 if sizes.threads else (os.cpu_count() or 1)
    argv = ["--device", sizes.device, "--images", str(sizes.loop_images), "--source-size", str(sizes.loop_source_size),
            "--image-size", str(sizes.loop_image_size), "--batch-size", str(sizes.loop_batch_size),
            "--epochs", str(sizes.loop_epochs), "--workers", str(workers)]
    if sizes.threads:
        argv += ["--threads", str(sizes.threads)]
    started = time.perf_counter()
    setup, (plain, ours) = compare_loops(parse_args(argv))
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the train jobs that follow run in processes of their own
    return {"setup": setup, "seconds": round(time.perf_counter() - started, 1), "ours": asdict(ours),
            "plain": asdict(plain), "train_speedup": ours.train_images_per_s / plain.train_images_per_s,
            "eval_speedup": ours.eval_images_per_s / plain.eval_images_per_s}


def build_dataset(folder: Path, sizes: Sizes, env: dict[str, str]) -> tuple[Path, str]:
    """A demo dataset under `folder` (or generated JPEGs where the demo cannot be built); (its root, its kind)."""
    root = folder / "demo"
    try:
        cli("demo", "--out", str(root), "--per-class", str(sizes.per_class), env=env)
        return root, "demo (photos)"
    except RuntimeError as error:
        from bench.train import write_jpegs

        print(f"the demo could not be built ({str(error).splitlines()[-1]}); using generated JPEGs", file=sys.stderr)
        root = folder / "generated"
        write_jpegs(root, sizes.per_class * 9, 640 if sizes.threads is None else 96)
        return root, "generated JPEGs"


def weights_installed() -> bool:
    from core.models.classifiers import weights_available

    return weights_available("mobilenet_v2")


def train_job(root: Path, db: Path, sizes: Sizes, env: dict[str, str], *, pretrained: bool,
              folds: int = 0) -> dict[str, Any]:
    """`listing-audit train` in its own process, then its phases from `metrics --format json`."""
    epochs = sizes.fold_epochs if folds else sizes.train_epochs
    argv = ["train", str(root), "--db", str(db), "--format", "json", "--device", sizes.device, "--epochs", str(epochs),
            "--pretrained", "imagenet" if pretrained else "none", "--folds", str(folds), *sizes.train_options]
    if sizes.threads:
        argv += ["--cpu-threads", str(sizes.threads)]
    out, process_seconds = cli(*argv, env=env)
    trained = json.loads(out)
    metrics_out, _ = cli("metrics", str(trained["run"]), "--db", str(db), "--format", "json", env=env)
    timing = json.loads(metrics_out)
    phases = timing["phases"]
    working = phases["train"] + phases["evaluate"]
    return {"run": trained["run"], "device": trained["device"], "epochs": epochs, "folds": folds,
            "process_seconds": round(process_seconds, 2), "seconds": timing["seconds"], "phases": phases,
            "fold_phases": timing["fold_phases"], "train_plus_evaluate_s": round(working, 3),
            "wall_over_train_evaluate": timing["seconds"] / working if working else None,
            "overhead_share": 1 - working / timing["seconds"] if timing["seconds"] else None,
            "accuracy": trained["metrics"]["accuracy"]}


def readable_photos(root: Path, db: Path) -> list[Path]:
    """The files the scan found readable, as the audit embeds them."""
    from db.engine import make_engine, make_session_factory
    from db.queries import get_dataset, samples_frame

    engine = make_engine(db)
    try:
        with make_session_factory(engine)() as session:
            samples = samples_frame(session, get_dataset(session, str(root)).id)
    finally:
        engine.dispose()
    return [root / path for path in samples.loc[samples["readable"], "path"]]


def embedding_throughput(photos: list[Path], sizes: Sizes) -> dict[str, Any]:
    """Images/s of the photo member's embedding (whole view at its photo size) over the dataset's photos."""
    import torch

    from core.audit.evidence.gather import MislabelOptions
    from core.models.embeddings import embed_images, pick_device

    if sizes.threads:
        torch.set_num_threads(sizes.threads)
    paths = photos * sizes.embed_repeats
    options = MislabelOptions()
    started = time.perf_counter()
    vectors = embed_images(paths, backbone=options.backbone, image_size=options.photo_size, view="whole",
                           device=sizes.device, progress=None)
    seconds = time.perf_counter() - started
    return {"images": len(paths), "seconds": round(seconds, 2), "images_per_s": len(paths) / seconds,
            "backbone": options.backbone, "image_size": options.photo_size, "view": "whole",
            "dimensions": int(vectors.shape[1]), "device": str(pick_device(sizes.device))}


def describe_machine() -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"gpu": gpu, "cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "load_average": os.getloadavg()[0], "host": platform.node()}


def format_table(report: dict[str, Any]) -> str:
    """The one table: a row per loop, job and the embedding, then each job's phases."""
    rate = lambda value: f"{value:,.0f}" if value is not None else "-"
    share = lambda value: f"{value:.0%}" if value is not None else "-"
    width = 30
    lines = [f"{'section':<{width}} {'img/s':>8} {'eval img/s':>10} {'GPU busy':>8} {'wall s':>7} "
             f"{'train+eval s':>12} {'wall/(t+e)':>10}"]
    loops = report["loops"]
    for name in ("ours", "plain"):
        row = loops[name]
        lines.append(f"{'loop ' + name + ': training':<{width}} {rate(row['train_images_per_s']):>8} "
                     f"{rate(row['eval_images_per_s']):>10} {share(row['gpu_busy_train']):>8}")
    for name in ("train", "folds"):
        job = report[name]
        epochs = f"{job['epochs']} epoch{'s' if job['epochs'] != 1 else ''}"
        label = f"{name} job ({epochs}" + (f", {job['folds']} folds)" if job["folds"] else ")")
        lines.append(f"{label:<{width}} {'':>8} {'':>10} {'':>8} {job['seconds']:>7.1f} "
                     f"{job['train_plus_evaluate_s']:>12.1f} {job['wall_over_train_evaluate']:>10.2f}")
    embedding = report["embedding"]
    if "images_per_s" in embedding:
        label = f"embedding ({embedding['images']} photos)"
        lines.append(f"{label:<{width}} {rate(embedding['images_per_s']):>8} {'':>10} {'':>8} "
                     f"{embedding['seconds']:>7.1f}")
    else:
        lines.append(f"{'embedding':<{width}} skipped: {embedding['skipped']}")
    lines.append(f"speed-up of our loop: training x{loops['train_speedup']:.2f}, "
                 f"evaluation x{loops['eval_speedup']:.2f}")
    for name in ("train", "folds"):
        phases = report[name]["phases"]
        lines.append(f"{name} job phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    return "\n".join(lines)


def output_path(out: Optional[str]) -> Optional[Path]:
    """--out as given (a folder gets gpu_check.json in it), else $OUT/gpu_check.json, else None."""
    target = out or os.environ.get("OUT")
    if not target:
        return None
    path = Path(target)
    return path / OUT_FILE_NAME if path.is_dir() or target.endswith("/") else path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes on the CPU (the test suite's check)")
    parser.add_argument("--out", default=None, help="JSON file, or a folder for gpu_check.json (default: $OUT)")
    parser.add_argument("--per-class", type=int, default=None, help="demo photos per class (9 classes)")
    args = parser.parse_args()
    sizes = SMALL if args.small else FULL
    if args.per_class:
        sizes = replace(sizes, per_class=args.per_class)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LISTING_AUDIT_DB", None)
    if sizes.threads:
        env["OMP_NUM_THREADS"] = str(sizes.threads)
    started = time.perf_counter()
    report: dict[str, Any] = {"setup": {**describe_machine(), "small": args.small, **asdict(sizes)}}
    report["loops"] = loop_comparison(sizes)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        building = time.perf_counter()
        root, kind = build_dataset(Path(scratch), sizes, env)
        db = Path(scratch) / "check.db"
        cli("scan", str(root), "--db", str(db), *(["--workers", "1"] if sizes.threads else []), env=env)
        pretrained = weights_installed()
        report["setup"].update(dataset=kind, pretrained=pretrained,
                               dataset_seconds=round(time.perf_counter() - building, 1))
        report["train"] = train_job(root, db, sizes, env, pretrained=pretrained)
        report["folds"] = train_job(root, db, sizes, env, pretrained=pretrained, folds=sizes.folds)
        report["embedding"] = (embedding_throughput(readable_photos(root, db), sizes) if pretrained
                               else {"skipped": "the mobilenet_v2 weights are not installed (make setup)"})
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(format_table(report))
    print(f"{report['seconds']:.0f} s in all")
    path = output_path(args.out)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str))
        print(f"JSON: {path}")


if __name__ == "__main__":
    main()
