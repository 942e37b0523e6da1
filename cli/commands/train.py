"""`listing-audit train`, `runs` and `metrics`: train a classifier on a dataset's current labels and read the results.

`train` runs the same job the app starts, in the foreground; `runs` lists a
dataset's training runs; `metrics` prints one run's evaluation and where its time
went (JSON by default).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import CliError, ProgressBar, add_db_option, add_format_option, open_db, print_json
from core.models.config import BACKBONE_NAMES, DEVICES, SPLITS, TrainConfig
from db.queries import get_dataset
from db.runs import TRAIN_KIND, requeue_run, run_by_number, run_metrics, run_phases, run_result, runs_frame
from jobs.runner import create_job, reap_dead_jobs, run_job

DEFAULTS = TrainConfig()
#: command-line option -> TrainConfig field, for the options passed straight through
CONFIG_OPTIONS = {
    "backbone": "backbone", "epochs": "epochs", "image_size": "image_size", "batch_size": "batch_size", "lr": "lr",
    "optimizer": "optimizer", "scheduler": "scheduler", "balance": "balance", "freeze_epochs": "freeze_backbone_epochs",
    "patience": "patience", "val_fraction": "val_fraction", "folds": "folds", "device": "device", "seed": "seed",
    "cpu_threads": "cpu_threads", "split": "split",
}


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train a classifier on the dataset's current labels and print its metrics",
        description="Fine-tune an ImageNet backbone on the dataset's current labels (corrections applied, deleted "
                    "and broken images left out) and evaluate it on the dataset's evaluation split, the same "
                    "listings for every run (or, with --split run, on a split of its own).",
    )
    train.add_argument("dataset_dir", help="a dataset folder already scanned into the database")
    add_db_option(train)
    add_format_option(train)
    train.add_argument("--backbone", choices=BACKBONE_NAMES, default=DEFAULTS.backbone)
    train.add_argument("--pretrained", choices=("imagenet", "none"), default="imagenet",
                       help="start from ImageNet weights (installed offline) or from scratch")
    train.add_argument("--epochs", type=int, default=None, help=f"most epochs to train (default {DEFAULTS.epochs})")
    train.add_argument("--image-size", type=int, default=DEFAULTS.image_size, metavar="PX")
    train.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    train.add_argument("--lr", type=float, default=DEFAULTS.lr, help="learning rate")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default=DEFAULTS.optimizer)
    train.add_argument("--scheduler", choices=("cosine", "step", "none"), default=DEFAULTS.scheduler)
    train.add_argument("--balance", choices=("sampler", "loss", "none"), default=DEFAULTS.balance,
                       help="class imbalance: oversample minority classes, weight the loss, or nothing")
    train.add_argument("--freeze-epochs", type=int, default=DEFAULTS.freeze_backbone_epochs, metavar="N",
                       help="train only the new head for the first N epochs")
    train.add_argument("--patience", type=int, default=DEFAULTS.patience,
                       help="stop after this many epochs without validation-loss improvement (0: never)")
    train.add_argument("--split", choices=SPLITS, default=DEFAULTS.split,
                       help="validate on the dataset's evaluation split, shared by every run (dataset), or on a "
                            "split drawn with --seed and --val-fraction (run)")
    train.add_argument("--val-fraction", type=float, default=DEFAULTS.val_fraction, help="--split run only")
    train.add_argument("--folds", type=int, default=DEFAULTS.folds,
                       help="also train K models for out-of-fold probabilities of every sample (0: off)")
    train.add_argument("--no-augment", action="store_true", help="no crop, flip or colour jitter")
    train.add_argument("--device", choices=DEVICES, default=DEFAULTS.device)
    train.add_argument("--seed", type=int, default=DEFAULTS.seed)
    train.add_argument("--cpu-threads", type=int, default=None, metavar="N",
                       help="torch threads when training on CPU (default: one per core; on a machine busy with "
                            "other work, fewer are often faster)")
    train.add_argument("--out-dir", type=Path, default=None,
                       help="checkpoint folder (default: runs/<database name>-<id>/<run id> beside the database)")
    train.add_argument("--resume", type=int, default=None, metavar="RUN",
                       help="continue a failed or cancelled run from its last checkpoint (other options ignored "
                            "except --epochs)")
    train.set_defaults(func=run_train)

    runs = subparsers.add_parser("runs", help="list a dataset's training runs")
    runs.add_argument("dataset_dir")
    add_db_option(runs)
    add_format_option(runs)
    runs.set_defaults(func=run_runs)

    metrics = subparsers.add_parser(
        "metrics", help="print a training run's evaluation and seconds per phase (JSON by default)")
    metrics.add_argument("run", type=int, help="the run's number (`listing-audit runs` lists them)")
    add_db_option(metrics)
    add_format_option(metrics, choices=("json", "text"))
    metrics.set_defaults(func=run_metrics_command)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the command line asks for; CliError when an option is invalid."""
    values = {field_name: getattr(args, option) for option, field_name in CONFIG_OPTIONS.items()
              if getattr(args, option) is not None}
    values["pretrained"] = args.pretrained == "imagenet"
    values["augment"] = not args.no_augment
    values["out_dir"] = str(args.out_dir.resolve()) if args.out_dir else None
    try:
        return TrainConfig.from_dict(values)
    except ValueError as error:
        raise CliError(str(error)) from error


def _dataset_id(factory, dataset_dir: str) -> int:
    if not Path(dataset_dir).is_dir():
        raise CliError(f"dataset folder does not exist or is not a folder: {dataset_dir}")
    with factory() as session:
        dataset = get_dataset(session, dataset_dir)
        if dataset is None:
            raise CliError(f"{dataset_dir} is not in the database yet: run `listing-audit scan {dataset_dir}` first")
        return dataset.id


def format_report(metrics: dict) -> str:
    """A classification report like scikit-learn's, plus the confusion matrix."""
    from core.models.metrics import report_table  # scikit-learn takes a second to load: only when printing a report

    table = report_table(metrics)
    width = max(len(str(name)) for name in table.index)
    lines = [f"{'':<{width}}  precision  recall  f1-score  support"]
    for name, row in table.iterrows():
        if name == "macro avg":
            lines.append(f"{'accuracy':<{width}}  {'':>9}  {'':>6}  {metrics['accuracy']:>8.3f}  {metrics['n']:>7}")
        lines.append(f"{name:<{width}}  {row.precision:>9.3f}  {row.recall:>6.3f}  {row.f1:>8.3f}  {int(row.support):>7}")
    lines.append("")
    lines.append("confusion matrix (rows = true class, columns = predicted):")
    cell = max(5, max(len(str(v)) for row in metrics["confusion_matrix"] for v in row) + 1)
    lines.append(f"{'':<{width}}  " + " ".join(f"{c[:cell]:>{cell}}" for c in metrics["classes"]))
    for name, row in zip(metrics["classes"], metrics["confusion_matrix"]):
        lines.append(f"{name:<{width}}  " + " ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def run_train(args: argparse.Namespace) -> int:
    factory = open_db(args)
    dataset_id = _dataset_id(factory, args.dataset_dir)
    with factory.begin() as session:
        if args.resume is not None:
            run = run_by_number(session, args.resume)
            if run is None or run.dataset_id != dataset_id:
                raise CliError(f"run {args.resume} is not a training run of {args.dataset_dir}")
            try:
                job = requeue_run(session, run.id, epochs=args.epochs)
            except ValueError as error:
                raise CliError(str(error)) from error
        else:
            config = config_from_args(args)
            job = create_job(session, dataset_id, TRAIN_KIND, {"config": config.to_dict()})
        job_id, number = job.id, job.number
    bar = ProgressBar(f"run {number}")
    job = run_job(factory, job_id, echo=bar)
    bar.close()
    if job.status != "succeeded":
        raise CliError(f"run {number} {job.status}: {(job.error or '').splitlines()[0] if job.error else ''}")
    result = run_result(job)
    if args.format == "json":
        print_json({"run": number, **{k: result[k] for k in ("device", "best_epoch", "stopped_early", "metrics")}})
        return 0
    metrics = result["metrics"]
    print(f"run {number} succeeded on {result['device']} in {result['seconds']:.1f} s: "
          f"{result['samples']['train']} training and {result['samples']['val']} validation images, "
          f"best epoch {result['best_epoch'] + 1} of {len(result['history'])}")
    print(f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_avg']['f1']:.4f}")
    print()
    print(format_report(metrics))
    return 0


def run_runs(args: argparse.Namespace) -> int:
    factory = open_db(args)
    dataset_id = _dataset_id(factory, args.dataset_dir)
    with factory.begin() as session:
        reap_dead_jobs(session)
        table = runs_frame(session, dataset_id).drop(columns="id").rename(columns={"number": "run"})
    if args.format == "json":
        print_json(table.astype(object).where(table.notna(), None).to_dict("records"))
        return 0
    if table.empty:
        print("no training runs yet")
        return 0
    print(f"{'run':>5}  {'status':<10} {'backbone':<16} {'px':>4} {'epochs':>7} {'accuracy':>8} {'macro F1':>8}  device")
    for row in table.itertuples():
        epochs = f"{row.epochs_done}/{row.epochs}"
        accuracy = "" if row.accuracy != row.accuracy else f"{row.accuracy:.4f}"  # NaN until finished
        macro = "" if row.macro_f1 != row.macro_f1 else f"{row.macro_f1:.4f}"
        print(f"{row.run:>5}  {row.status:<10} {row.backbone or '':<16} {row.image_size or '':>4} {epochs:>7} "
              f"{accuracy:>8} {macro:>8}  {row.device or ''}")
    return 0


def run_metrics_command(args: argparse.Namespace) -> int:
    factory = open_db(args)
    with factory() as session:
        run = run_by_number(session, args.run)
        if run is None:
            raise CliError(f"no training run {args.run}")
        metrics = run_metrics(session, run.id)
        timing = run_phases(session, run.id) or {}
        status = run.status
    if metrics is None:
        raise CliError(f"run {args.run} has no metrics: it is {status}")
    if args.format == "json":
        print_json({"run": args.run, **metrics, **timing})
        return 0
    print(format_report(metrics))
    if timing:
        print()
        print(format_phases(timing))
    return 0


def format_phases(timing: dict) -> str:
    """One line: the run's wall seconds and each phase's seconds and share of them (db.runs.run_phases)."""
    wall = timing["seconds"] or 0.0
    parts = [f"{name} {seconds:.1f} s ({seconds / wall:.0%})" if wall else f"{name} {seconds:.1f} s"
             for name, seconds in timing["phases"].items() if seconds]
    return f"{wall:.1f} s in all: " + ", ".join(parts)
