"""Chaos: 8 reviewer processes x 100 decisions on the same samples while audits and a training run share the database.

Each reviewer is a real process that makes its decisions through the CLI's
entry point (`listing-audit correct ... --format json`, run in-process so that
800 decisions do not pay 800 interpreter start-ups), opening the database for
each one like the command does. Audits (cheap checks) and a one-epoch training
run are real `listing-audit` processes at the same time. Nothing may be lost:
every decision reported as made is in the log and nothing else is, every
refusal is one line, no process writes a traceback, and the file passes
`PRAGMA integrity_check`. The figures (decisions, wall time, retries, worst
latency, the machine) are printed; docs/reliability.md records a run.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from db.evaluation import ensure_evaluation_split, evaluation_sides
from db.models import Correction, Job, Sample
from db.queries import samples_frame

REPO = Path(__file__).resolve().parents[2]
REVIEWERS = 8
DECISIONS_EACH = 100
AUDITS = 3
WAIT_S = 300
#: (weight, CLI options) of the decisions a reviewer makes; impossible ones are refused with one line.
ACTIONS = [(40, ["--keep"]), (30, ["--relabel"]), (10, ["--delete"]), (10, ["--restore"]), (10, ["--undo"])]
FAST_TRAIN = ["--backbone", "mobilenet_v2", "--pretrained", "none", "--epochs", "1", "--image-size", "32",
              "--batch-size", "4", "--cpu-threads", "1"]


class RetryCounter(logging.Handler):
    """Counts db.engine's "database busy, retrying" records."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "retrying" in record.getMessage()


def review(db_path: str, root: str, reviewer: str, paths: list[str], classes: list[str], decisions: int,
           seed: int) -> None:
    """A reviewer process: `decisions` random `correct` commands on `paths`; prints one JSON line of what happened.

    Imports only the CLI (this module keeps torch out of its imports: eight reviewers would pay for it).
    """
    from cli.main import main

    logging.basicConfig(level=logging.WARNING)  # log to the real stderr, not to the first command's capture
    retries = RetryCounter()
    engine_log = logging.getLogger("db.engine")
    engine_log.setLevel(logging.DEBUG)
    engine_log.addHandler(retries)
    engine_log.propagate = False
    rng = random.Random(seed)
    weights, choices = zip(*ACTIONS)
    records = []
    for _ in range(decisions):
        path, options = rng.choice(paths), list(rng.choices(choices, weights)[0])
        if options == ["--relabel"]:
            options.append(rng.choice(classes))
        out, err = io.StringIO(), io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["correct", root, path, *options, "--reviewer", reviewer, "--db", db_path, "--format", "json"])
        records.append({
            "code": code, "seconds": time.perf_counter() - started, "path": path, "stderr": err.getvalue(),
            "decision": json.loads(out.getvalue()) if code == 0 else None,
        })
    print(json.dumps({"reviewer": reviewer, "retries": retries.count, "records": records}))


def start(argv: list[str], log_dir: Path, name: str) -> subprocess.Popen:
    """A real process in the repository, stdout and stderr to <log_dir>/<name>.out / .err."""
    return subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.DEVNULL,
        stdout=open(log_dir / f"{name}.out", "w"), stderr=open(log_dir / f"{name}.err", "w"),
    )


def start_reviewer(db_path: Path, root: Path, index: int, paths: list[str], classes: list[str],
                   log_dir: Path) -> subprocess.Popen:
    call = (f"from tests.adversarial.test_chaos import review; review({str(db_path)!r}, {str(root)!r}, "
            f"'r{index}', {paths!r}, {classes!r}, {DECISIONS_EACH}, {index})")
    return start([sys.executable, "-c", call], log_dir, f"reviewer-{index}")


def start_audits(db_path: Path, root: Path, log_dir: Path) -> subprocess.Popen:
    """AUDITS audits one after another in one `listing-audit` process, so that one is running most of the time."""
    argv = ["audit", str(root), "--checks", "broken,quality,duplicate,price", "--db", str(db_path)]
    call = f"import sys; from cli.main import main; sys.exit(max([main({argv!r}) for _ in range({AUDITS})]))"
    return start([sys.executable, "-c", call], log_dir, "audits")


def start_training(db_path: Path, root: Path, log_dir: Path) -> subprocess.Popen:
    argv = ["train", str(root), *FAST_TRAIN, "--out-dir", str(log_dir / "runs"), "--db", str(db_path)]
    return start([sys.executable, "-m", "cli.main", *argv], log_dir, "train")


def finished(process: subprocess.Popen, log_dir: Path, name: str) -> tuple[int, str, str]:
    """Wait for `process`: (exit code, stdout, stderr)."""
    code = process.wait(timeout=WAIT_S)
    return code, (log_dir / f"{name}.out").read_text(), (log_dir / f"{name}.err").read_text()


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), load average {load}"


@pytest.mark.slow
def test_eight_reviewers_an_audit_and_a_training_run_lose_nothing(factory, db_path, tmp_path):
    from core.models.config import TrainConfig  # here: these import torch, which reviewers do not need
    from core.models.samples import select_samples
    from tests.training_data import CLASSES, scanned_dataset

    root = tmp_path / "data"
    dataset_id = scanned_dataset(factory, root)
    # Reviewers leave the training run's validation images alone: deleting all of them is a legitimate
    # outcome ("too few usable samples"), not a lost decision, and would fail the run for the wrong reason.
    # The run validates on the dataset's stored evaluation split (jobs.train), so the test draws it first.
    with factory.begin() as session:
        ensure_evaluation_split(session, dataset_id)
        frame = samples_frame(session, dataset_id)
        frame["evaluation"] = frame["id"].map(evaluation_sides(session, dataset_id))
    defaults = TrainConfig()
    assert defaults.split == "dataset"
    split = select_samples(frame, list(CLASSES), val_fraction=defaults.val_fraction, seed=defaults.seed)
    validation = {split.paths[position] for position in split.val_index}
    paths = sorted(path for path in frame.loc[frame["readable"].astype(bool), "path"] if path not in validation)
    assert validation and len(paths) >= 12
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    load_before = machine()

    started, cpu_before = time.monotonic(), children_cpu_s()
    others = {"audits": start_audits(db_path, root, log_dir), "train": start_training(db_path, root, log_dir)}
    reviewers = {f"reviewer-{i}": start_reviewer(db_path, root, i, paths, list(CLASSES), log_dir) for i in range(REVIEWERS)}
    results = {name: finished(process, log_dir, name) for name, process in {**reviewers, **others}.items()}
    wall_s, cpu_s = time.monotonic() - started, children_cpu_s() - cpu_before

    for name, (code, _, err) in results.items():
        assert code == 0 and "Traceback" not in err, f"{name} exited {code}:\n{err[-3000:]}"
    reports = [json.loads(results[name][1].splitlines()[-1]) for name in reviewers]
    records = [record for report in reports for record in report["records"]]
    assert len(records) == REVIEWERS * DECISIONS_EACH
    for record in records:  # a decision is made, or refused with one line (impossible action, or busy)
        if record["code"] != 0:
            lines = record["stderr"].splitlines()
            assert record["code"] == 2 and len(lines) == 1 and lines[0].startswith("error: "), record

    made = {record["decision"]["id"]: record for record in records if record["code"] == 0}
    with factory() as session:
        logged = {
            row.id: row for row in session.execute(
                select(Correction.id, Correction.reviewer, Correction.action, Sample.path)
                .join(Sample, Sample.id == Correction.sample_id).where(Correction.reviewer.like("r%"))
            )
        }
        jobs = dict(session.execute(select(Job.kind, Job.status).where(Job.status != "succeeded")).all())
    assert set(logged) == set(made)  # nothing lost, nothing recorded twice
    for decision_id, record in made.items():
        row = logged[decision_id]
        assert (row.reviewer, row.action, row.path) == (
            record["decision"]["reviewer"], record["decision"]["action"], record["path"])
    assert jobs == {}  # every audit and the training run succeeded
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    busy = sum("is busy" in record["stderr"] for record in records)
    latencies = sorted(record["seconds"] for record in records)
    print(
        f"\nchaos: {len(records)} decisions by {REVIEWERS} reviewers ({len(made)} made, "
        f"{len(records) - len(made) - busy} refused as impossible, {busy} busy) with {AUDITS} audits and a "
        f"training run in {wall_s:.1f} s ({cpu_s:.0f} CPU s); retries {sum(report['retries'] for report in reports)}; decision "
        f"latency median {latencies[len(latencies) // 2] * 1000:.0f} ms, p99 "
        f"{latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
        f"machine before: {load_before}; after: {machine()}"
    )
