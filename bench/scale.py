"""Scale: every stage of listing-audit on 100,000 generated listing photos, with per-image costs and a
projection to 10 million listings.

Usage: python bench/scale.py [--images 100000] [--db PATH|URL] [--executor local|ray] [--workers N]
                             [--data DIR] [--mislabel sample|skip] [--mislabel-sample 5000]
                             [--full-audit none|cold|warm] [--bulk 1000000] [--repeat 5] [--no-apptest]
                             [--json FILE]

Stages, each in its own process (so that its wall time, CPU time of the process and its children, and
peak memory are its own):
- generate: bench/scale_data.py writes the photos, listings.csv and truth.csv (reused when --data
  already holds the same dataset);
- scan: a cold scan as `listing-audit scan` runs it (a scan job run in the foreground) into an empty
  database;
- cheap: an audit job with the broken, quality and price checks;
- duplicate: an audit job with the duplicate check; planted copies found are counted against truth.csv;
- mislabel: the mislabel check (embeddings, out-of-fold classifiers, cleanlab). On two CPU cores it
  takes over an hour at 100,000, so it runs on two disjoint random subsamples (a quarter of
  --mislabel-sample, then --mislabel-sample), each with and then without embedding, and is projected
  from them; --mislabel skip leaves it out;
- audit: one audit job with every check but the mislabel check, as `listing-audit audit` runs it; with
  --full-audit cold every check, compared with what the projection predicts; with --full-audit warm
  every check after the embedding cache was filled (stage prefill: real embeddings of a few photos per
  class lent to the others), which measures the rest of a full audit (fits, peak memory) at full size;
- review: the Review page's loaders (db.review, db.flags) on the audit's queue, one item's evidence, one
  decision written as the page writes it (db.engine.write_transaction + db.corrections.decide), and the
  page itself rendered by streamlit's AppTest after a decision (every cache misses);
- bulk (--bulk N): N sample rows and their flags bulk-inserted as a second dataset, then the review
  stage again on it.
Peak memory is the largest single process's peak RSS (from wait4) and the sampled peak of the whole
process tree's summed RSS (pages shared between forked processes counted in each: an upper bound).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from scale_data import ScaleOptions, write_dataset  # noqa: E402
from scan import cpu_model  # noqa: E402

EXECUTORS = ("local", "ray")
MISLABEL_MODES = ("sample", "skip")
FULL_AUDIT_MODES = ("none", "cold", "warm")
CHEAP_CHECKS = ("broken", "quality", "price")
#: Targets of issue 11 at 100,000 listings on a 2-core machine, seconds.
TARGETS = {"scan": 90.0, "duplicate": 15.0, "render": 1.0, "decision": 0.05, "audit_peak_gb": 4.0}
PROJECTED_LISTINGS = 10_000_000
SAMPLE_INTERVAL_S = 0.5
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
#: Shares of the bulk database's samples that are flagged and of the flags decided on earlier.
BULK_FLAG_RATE = 0.05
BULK_DECIDED_RATE = 0.1


# --- measuring a stage in its own process ------------------------------------------------------


@dataclass
class StageResult:
    """One stage: wall seconds of its process (start-up included) and of the work itself; CPU seconds of
    the process tree (from wait4, or sampled when that is more: see TreeSampler); peak RSS of its largest
    process and sampled peak RSS of the tree, bytes; what the stage reported."""

    name: str
    wall_s: float
    work_s: float
    cpu_s: float
    peak_rss: int
    tree_peak_rss: int
    details: dict = field(default_factory=dict)


def _tree_pids(root_pid: int) -> list[int]:
    """`root_pid` and all its descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def _rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_ticks(pid: int) -> int:
    """User plus system CPU of process `pid` so far, clock ticks (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Every SAMPLE_INTERVAL_S: the summed RSS of a process tree (keeping the peak; pages shared by forked
    processes count once per process, so it is an upper bound) and each process's CPU
    time (keeping the last seen), so that processes wait4 cannot count (Ray's workers, reaped by its
    raylet or by no one) are counted too, but for their last interval."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self.ticks: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_INTERVAL_S):
            pids = _tree_pids(self.pid)
            self.peak = max(self.peak, sum(_rss_bytes(pid) for pid in pids))
            for pid in pids:
                self.ticks[pid] = max(self.ticks.get(pid, 0), _cpu_ticks(pid))

    @property
    def cpu_s(self) -> float:
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")


def run_stage(stage: str, config: dict, workdir: Path, *, label: Optional[str] = None) -> StageResult:
    """Run `stage` in a child process (`--stage`), measure it and return what it reported, named `label`."""
    label = label or stage
    config_file, result_file = workdir / f"{label}.config.json", workdir / f"{label}.result.json"
    config_file.write_text(json.dumps(config))
    result_file.unlink(missing_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {label} ...", flush=True)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--stage", stage,
                              "--config", str(config_file), "--result", str(result_file)])
    sampler = TreeSampler(child.pid)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    sampler.done.set()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 or not result_file.exists():
        raise SystemExit(f"error: stage {label} failed (exit status {child.returncode}); its output is above")
    reported = json.loads(result_file.read_text())
    cpu = max(usage.ru_utime + usage.ru_stime, sampler.cpu_s)
    return StageResult(label, wall, reported.pop("work_s"), cpu, usage.ru_maxrss * 1024, sampler.peak, reported)


def stage_main(name: str, config_file: Path, result_file: Path) -> int:
    """Child process: run one stage and write {"work_s": seconds, **details} to `result_file`. With the
    ray executor a local Ray instance of `workers` CPUs runs first (its start-up is not timed)."""
    config = json.loads(config_file.read_text())
    if config.get("executor") == "ray" and name in RAY_STAGES and "mislabel" in config.get("checks", ["mislabel"]):
        start_local_ray(config["workers"])
    started = time.perf_counter()
    details = STAGES[name](config)
    result_file.write_text(json.dumps({"work_s": time.perf_counter() - started, **details}, default=float))
    return 0


# --- the stages (each runs in its own process) --------------------------------------------------

#: The stages whose image work the ray executor takes (the scan's inspection, the photo embeddings; an
#: audit stage only when it runs the mislabel check).
RAY_STAGES = ("scan", "mislabel_sample", "audit")
RAY_OBJECT_STORE_BYTES = 1 << 30


def start_local_ray(cpus: int) -> None:
    """A Ray instance on this machine with `cpus` CPUs, as `--executor ray` without a cluster address
    would start (core.executors.connect_ray), but with that many workers; shut down when the stage ends."""
    import atexit
    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=cpus, object_store_memory=RAY_OBJECT_STORE_BYTES, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    atexit.register(ray.shutdown)



def _factory(config: dict):
    from db.engine import make_engine, make_session_factory

    return make_session_factory(make_engine(config["db"]))


def _executor_params(config: dict) -> dict:
    """Job params that name the executor (explicitly: $LISTING_AUDIT_RAY_ADDRESS must not choose it)."""
    return {"executor": config["executor"]}


def stage_generate(config: dict) -> dict:
    plan = write_dataset(config["root"], ScaleOptions(images=config["images"], seed=config["seed"]),
                         workers=config["workers"])
    return {"files": int(len(plan.kind)), "planted": {kind: int((plan.kind == kind).sum())
                                                      for kind in ("exact", "near", "broken")}}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_scan(config: dict) -> dict:
    """A scan job run in the foreground, as `listing-audit scan` does. The progress messages mark when the
    inspection's results start and stop arriving: this process's CPU outside that window is serial work."""
    from db.queries import get_or_create_dataset
    from jobs.runner import create_job, job_result, run_job

    marks: dict[str, float] = {}

    def mark(fraction: float, message: str) -> None:
        if message.endswith(" images") and "/" in message:
            marks.setdefault("first results", _own_cpu())
        elif message == "saving":
            marks["saving"] = _own_cpu()

    own_before = _own_cpu()
    factory = _factory(config)
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, config["root"])
        if dataset.scanned_at is not None:
            raise SystemExit(f"error: {config['db']} already holds a scan of {config['root']}; give an empty database")
        job_id = create_job(session, dataset.id, "scan",
                            {"root": dataset.root, "workers": config["workers"], **_executor_params(config)}).id
    job = run_job(factory, job_id, echo=mark)
    if job.status != "succeeded":
        raise SystemExit(f"error: scan {job.status}: {(job.error or '').splitlines()[0]}")
    summary = job_result(job)
    own = _own_cpu() - own_before
    saving = marks.get("saving", own)
    overlapped = saving - marks.get("first results", saving)
    return {"dataset_id": summary["dataset_id"], "images": summary["images"],
            "unreadable": len(summary["unreadable"]), "serial_cpu_s": own - overlapped}


def _run_audit_job(config: dict, checks: list[str], options: Optional[dict] = None) -> dict:
    """An audit job with `checks` run in the foreground, as `listing-audit audit` does; its result."""
    from jobs.audit import audit_params
    from jobs.runner import create_job, job_result, run_job

    factory = _factory(config)
    with factory.begin() as session:
        params = {**audit_params(checks=checks, options=options), **_executor_params(config)}
        job_id = create_job(session, config["dataset_id"], "audit", params).id
    job = run_job(factory, job_id)
    if job.status != "succeeded":
        raise SystemExit(f"error: audit {job.status}: {(job.error or '').splitlines()[0]}")
    result = job_result(job)
    return {"job_id": job_id, "samples": result["samples"], "flags": result["flags_by_kind"],
            "seconds": {name: check["seconds"] for name, check in result["checks"].items()},
            "summaries": result["checks"]}


def stage_cheap(config: dict) -> dict:
    return _run_audit_job(config, list(CHEAP_CHECKS))


def stage_duplicate(config: dict) -> dict:
    """The duplicate check, and how many planted copies it put in one group with their original."""
    from db.flags import flags_frame

    outcome = _run_audit_job(config, ["duplicate"])
    with _factory(config)() as session:
        flags = flags_frame(session, outcome["job_id"], kind="duplicate")
    group_of = dict(zip(flags["path"], flags["group"]))
    truth = pd.read_csv(Path(config["root"]) / "truth.csv")
    found = {}
    for kind in ("exact", "near"):
        copies = truth[truth["kind"] == kind]
        found[kind] = int(sum(group_of.get(copy) is not None and group_of.get(copy) == group_of.get(original)
                              for copy, original in zip(copies["path"], copies["source"])))
    outcome["planted_found"] = found
    outcome["planted"] = {kind: int((truth["kind"] == kind).sum()) for kind in ("exact", "near")}
    outcome["hash_search_s"] = time_hash_search(config)
    return outcome


def time_hash_search(config: dict) -> float:
    """Seconds of the duplicate check's near-duplicate hash search alone (core.audit.checks.duplicates
    near_pairs_by_band, as the check runs it), on the dataset's readable samples: the part of the check
    that grows faster than the number of images."""
    from sqlalchemy import select

    from core.audit.checks.duplicates import DuplicateCheck, brightness_bands, near_pairs_by_band
    from core.scan.hashindex import hex_to_uint64
    from db.models import Sample

    with _factory(config)() as session:
        rows = session.execute(select(Sample.phash, Sample.brightness).where(
            Sample.dataset_id == config["dataset_id"], Sample.phash.is_not(None))).all()
    hashes = hex_to_uint64([phash for phash, _ in rows])
    bands = brightness_bands(np.array([brightness for _, brightness in rows], dtype=float))
    started = time.perf_counter()
    near_pairs_by_band(hashes, bands, max_distance=DuplicateCheck().max_distance)
    return time.perf_counter() - started


def _mislabel_found(root: str, flagged_paths: set[str], audited_paths: set[str]) -> dict:
    """Planted mislabels among the audited paths, how many were flagged, and how many flags were right."""
    truth = pd.read_csv(Path(root) / "truth.csv")
    wrong = set(truth.loc[truth["true_label"] != truth["folder_label"], "path"]) & audited_paths
    return {"planted": len(wrong), "flagged": len(flagged_paths), "found": len(wrong & flagged_paths)}


def _timed_run(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, value) of work()."""
    wall, cpu = time.perf_counter(), _own_cpu()
    value = work()
    return time.perf_counter() - wall, _own_cpu() - cpu, value


def stage_mislabel_sample(config: dict) -> dict:
    """The mislabel check (core.audit.run.run_audit, as the audit job calls it) on `config["sample"]` readable
    samples chosen at random, after the `config["skip"]` chosen before; then again, embeddings cached, which
    times the out-of-fold fits and cleanlab alone. The embedding cache is emptied after."""
    from sqlalchemy import delete

    from core.audit.run import flags_table, run_audit
    from core.audit.checks.base import AuditContext
    from db.embeddings import DbEmbeddingStore
    from db.models import Embedding
    from db.queries import dataset_classes
    from jobs.audit import audit_samples

    factory = _factory(config)
    with factory() as session:
        samples = audit_samples(session, config["dataset_id"])
        classes = dataset_classes(session, config["dataset_id"])
    readable = samples[samples["readable"].astype(bool)]
    order = np.random.default_rng(config["seed"]).permutation(len(readable))
    chosen = readable.iloc[np.sort(order[config["skip"]:config["skip"] + config["sample"]])]
    context = AuditContext(samples=chosen, classes=classes, root=Path(config["root"]),
                           params=_executor_params(config), embeddings=DbEmbeddingStore(factory))
    cold_s, cold_cpu, run = _timed_run(lambda: run_audit(context, ["mislabel"]))
    if "mislabel" in run.errors:
        raise SystemExit(f"error: the mislabel check failed: {run.errors['mislabel']}")
    warm_s, warm_cpu, _ = _timed_run(lambda: run_audit(context, ["mislabel"]))
    with factory.begin() as session:  # later stages (the full audit) embed cold
        session.execute(delete(Embedding))
    flags = flags_table(run, chosen)
    summary = run.summary()["mislabel"]
    return {"samples": len(chosen), "cold_s": cold_s, "cold_cpu_s": cold_cpu, "warm_s": warm_s,
            "warm_cpu_s": warm_cpu, "members": summary.get("members"),
            "found": _mislabel_found(config["root"], set(chosen.loc[flags["sample_id"], "path"]),
                                     set(chosen["path"]))}


def stage_audit(config: dict) -> dict:
    return _run_audit_job(config, config["checks"])


#: Photos per class embedded for real by stage_prefill; every other photo of the class borrows one of
#: their vectors, with noise of this share of each dimension's spread (no two vectors are equal).
DONORS_PER_CLASS = 40
DONOR_NOISE = 0.1
PREFILL_BATCH = 10_000


def stage_prefill(config: dict) -> dict:
    """Fill the embedding cache for every readable photo of the dataset, for the mislabel check's photo
    and crop members, without embedding them all: DONORS_PER_CLASS photos per true class (truth.csv) are
    embedded, and each photo gets a donor of its true class's vector plus noise. A full audit after it
    then runs every step but the embedding, at full size (its fits and its peak memory)."""
    from sqlalchemy import select

    from core.audit.evidence.gather import MislabelOptions
    from core.models.embeddings import cache_key, embed_images
    from db.embeddings import DbEmbeddingStore
    from db.models import Sample

    factory, options = _factory(config), MislabelOptions()
    with factory() as session:
        rows = session.execute(select(Sample.path, Sample.content_hash).where(
            Sample.dataset_id == config["dataset_id"], Sample.readable.is_(True))).all()
    truth = pd.read_csv(Path(config["root"]) / "truth.csv").set_index("path")["true_label"]
    photos = pd.DataFrame(rows, columns=["path", "content_hash"]).drop_duplicates("content_hash")
    photos["true_label"] = truth.reindex(photos["path"]).to_numpy()
    rng = np.random.default_rng(config["seed"])
    donors = photos.sample(frac=1.0, random_state=config["seed"]).groupby("true_label").head(DONORS_PER_CLASS)
    store = DbEmbeddingStore(factory)
    for view, size in (("whole", options.photo_size), ("crop", options.image_size)):
        real = embed_images([str(Path(config["root"]) / path) for path in donors["path"]],
                            backbone=options.backbone, image_size=size, view=view)
        spread = real.std(axis=0) * DONOR_NOISE
        by_class = {label: real[np.flatnonzero(donors["true_label"].to_numpy() == label)]
                    for label in donors["true_label"].unique()}
        for start in range(0, len(photos), PREFILL_BATCH):
            batch = photos.iloc[start:start + PREFILL_BATCH]
            vectors = np.stack([by_class[label][rng.integers(len(by_class[label]))] for label in batch["true_label"]])
            vectors += rng.normal(size=vectors.shape).astype(np.float32) * spread
            store.put_many(dict(zip(batch["content_hash"], vectors)), cache_key(options.backbone, image_size=size,
                                                                                  view=view))
    return {"photos": len(photos), "donors": len(donors)}


def stage_bulk(config: dict) -> dict:
    """Bulk-insert a dataset of config["bulk"] samples, one succeeded audit job with flags, earlier
    decisions; returns its dataset id. Paths of the scanned dataset's files are reused, under a second
    root that links to the first, so the page shows real photos."""
    from scale_bulk import insert_bulk_dataset

    return insert_bulk_dataset(_factory(config), Path(config["root"]), Path(config["bulk_root"]),
                               samples=config["bulk"], flag_rate=BULK_FLAG_RATE,
                               decided_rate=BULK_DECIDED_RATE, seed=config["seed"])


def stage_review(config: dict) -> dict:
    from scale_review import review_timings

    return review_timings(_factory(config), config["dataset_id"], repeat=config["repeat"],
                          database=config["db"], apptest=config["apptest"])


STAGES: dict[str, Callable[[dict], dict]] = {
    "generate": stage_generate, "scan": stage_scan, "cheap": stage_cheap, "duplicate": stage_duplicate,
    "mislabel_sample": stage_mislabel_sample, "audit": stage_audit, "prefill": stage_prefill,
    "bulk": stage_bulk, "review": stage_review,
}


# --- projection -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """A machine (or cluster) the costs are projected to: cores that run parallel image work, and GPU
    embedding throughput per view in images/s (None: the CPU embeds, at this machine's cost per core)."""

    name: str
    cores: int
    gpu_images_per_s: Optional[float]


def affine(small_n: int, small: float, large_n: int, large: float) -> tuple[float, float]:
    """(fixed, per item) of a cost measured at two sizes; a cost that did not grow (noise on a busy
    machine) is taken as proportional to the size instead: an upper bound."""
    per_item = (large - small) / (large_n - small_n)
    if per_item <= 0:
        return 0.0, large / large_n
    return large - per_item * large_n, per_item


def hash_search_factor(images: int, target: int, max_distance: int = 12) -> float:
    """How much more the near-duplicate hash search costs per image at `target` images than at `images`
    (core.scan.hashindex's own cost model)."""
    from core.scan.hashindex import choose_chunks, estimated_cost

    return (estimated_cost(target, *choose_chunks(target, max_distance))
            / estimated_cost(images, *choose_chunks(images, max_distance)))


@dataclass
class Costs:
    """Per-image costs measured at `images` listings on this machine, seconds (CPU or wall as named)."""

    images: int
    workers: int
    scan_serial: float
    scan_parallel_cpu: float
    cheap: float
    duplicate: float  # without the hash search
    hash_search: float
    audit_overhead: float  # the audit job's own work: loading samples, storing flags
    mislabel_embed_cpu: Optional[float] = None  # CPU seconds per image, both views
    mislabel_fit: Optional[tuple[float, float]] = None  # CPU seconds of the fits: (fixed, per image)
    mislabel_memory: Optional[tuple[float, float]] = None  # peak RSS, bytes: (fixed, per image)

    def mislabel_seconds(self, listings: int, machine: Machine) -> Optional[float]:
        """The mislabel check at `listings` on `machine`: embedding (on its GPU, or on its cores at this
        machine's CPU cost) plus the out-of-fold fits and cleanlab in one process (their CPU time)."""
        if self.mislabel_fit is None:
            return None
        fits = self.mislabel_fit[0] + self.mislabel_fit[1] * listings
        if machine.gpu_images_per_s:
            return 2 * listings / machine.gpu_images_per_s + fits
        return self.mislabel_embed_cpu * listings / machine.cores + fits

    def mislabel_peak_bytes(self, listings: int) -> Optional[float]:
        return None if self.mislabel_memory is None else self.mislabel_memory[0] + self.mislabel_memory[1] * listings

    def scan_seconds(self, listings: int, cores: int) -> float:
        return listings * (self.scan_serial + self.scan_parallel_cpu / cores)

    def duplicate_seconds(self, listings: int) -> float:
        return listings * (self.duplicate + self.hash_search * hash_search_factor(self.images, listings))


def projection(costs: Costs, machines: list[Machine], listings: int) -> list[dict]:
    """Projected seconds per stage at `listings` on each machine (see the assumptions in ASSUMPTIONS)."""
    rows = []
    for machine in machines:
        mislabel = costs.mislabel_seconds(listings, machine)
        cheap, duplicate = costs.cheap * listings, costs.duplicate_seconds(listings)
        rows.append({"machine": machine.name, "scan": costs.scan_seconds(listings, machine.cores), "cheap": cheap,
                     "duplicate": duplicate, "mislabel": mislabel,
                     "audit": None if mislabel is None else cheap + duplicate + mislabel + costs.audit_overhead * listings,
                     "mislabel_memory_gb": (None if costs.mislabel_memory is None
                                            else costs.mislabel_peak_bytes(listings) / 2**30)})
    return rows


ASSUMPTIONS = """\
Assumptions of the projection:
- scan: the workers' CPU per image divides over the machine's cores at this machine's speed per core; the
  main process's CPU (listing files, reading listings.csv, writing rows) does not divide: it is serial.
  The files are on local disk or a shared file system as fast as this one.
- cheap checks and the audit's own work (loading samples, storing flags) run in one process: linear in N.
- duplicates: one process; the hash search (by brightness band, timed alone) grows per image as
  core.scan.hashindex's cost model says (estimated_cost: {search:.2f}x per image at {target:,}); the rest of
  the check (pixel comparisons of candidates, grouping) is linear.
- mislabel: two network views per photo (photo, crop), embedding CPU per image from the larger subsample
  (with, minus without, embedding). GPU machine: {gpu:,.0f} images/s per view (issue 10's target for one
  GPU; not measured here). Ray cluster: CPU workers at this machine's CPU cost per image, on all
  {cluster_cores} cores. The out-of-fold fits and cleanlab run in one process: their CPU time, fixed part
  plus a part per image (from the two subsamples, or from the larger one and a warm full audit when
  one ran), counts as wall time. Memory likewise: fixed plus per image (every photo's embeddings, and
  copies of a fold's, are held at once); the machine must have it.
"""


# --- report ---------------------------------------------------------------------------------------


def _gb(value: float) -> str:
    return f"{value / 2**30:.2f}"


def stage_table(results: list[StageResult], images: int) -> str:
    lines = ["| stage | images | wall s | work s | CPU s | ms/image (wall) | CPU ms/image | peak RSS GB | tree RSS GB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        count = result.details.get("samples") or result.details.get("images") or images
        lines.append(f"| {result.name} | {count:,} | {result.wall_s:.1f} | {result.work_s:.1f} | {result.cpu_s:.1f} | "
                     f"{1000 * result.work_s / count:.3f} | {1000 * result.cpu_s / count:.3f} | "
                     f"{_gb(result.peak_rss)} | {_gb(result.tree_peak_rss)} |")
    return "\n".join(lines)


def review_table(name: str, review: dict) -> str:
    lines = [f"Review queries, {name} ({review['open_items']:,} open items): median / worst ms",
             "| query | median ms | worst ms | calls |", "|---|---:|---:|---:|"]
    for query, values in review["queries"].items():
        lines.append(f"| {query} | {values['median_ms']:.1f} | {values['max_ms']:.1f} | {values['calls']} |")
    lines.append(f"| page loaders after a decision (sum of medians) | {review['render_queries_ms']:.1f} | | |")
    page = review.get("apptest")
    if page:
        lines.append(f"| page in AppTest after a decision | {page['after_decision_ms']:.1f} | "
                     f"{page['after_decision_max_ms']:.1f} | |")
        lines.append(f"| page in AppTest, nothing changed | {page['unchanged_ms']:.1f} | | |")
        lines.append(f"| page in AppTest, first run (imports, empty caches) | {page['first_ms']:.1f} | | |")
    return "\n".join(lines)


def targets_met(stages: dict[str, StageResult], reviews: dict[str, dict]) -> list[str]:
    """One line per target of issue 11 with the measured value and whether it is met."""
    def line(what: str, value: Optional[float], limit: float, unit: str) -> str:
        if value is None:
            return f"- {what}: not measured"
        return f"- {what}: {value:.3f} {unit} (target <= {limit} {unit}): {'met' if value <= limit else 'MISSED'}"

    lines = [line("cold scan", stages["scan"].wall_s, TARGETS["scan"], "s"),
             line("duplicate check", stages["duplicate"].details["seconds"]["duplicate"], TARGETS["duplicate"], "s")]
    for name, review in reviews.items():
        page = review.get("apptest") or {}
        render = page.get("after_decision_ms", review["render_queries_ms"]) / 1000
        lines.append(line(f"Review page render, {name}", render, TARGETS["render"], "s"))
        lines.append(line(f"one decision, {name}", review["queries"]["decision"]["median_ms"] / 1000,
                          TARGETS["decision"], "s"))
    if "audit" in stages:
        lines.append(line("audit peak memory (largest process)", stages["audit"].peak_rss / 2**30,
                          TARGETS["audit_peak_gb"], "GB"))
    return lines


# --- the run --------------------------------------------------------------------------------------


def executor_available(name: str) -> Optional[str]:
    """None when executor `name` can run here, else why not (one line)."""
    if name == "local":
        return None
    from core.executors import ExecutorError, check_ray

    try:
        check_ray()
    except ExecutorError as error:
        return str(error)
    return None


def already_written(root: Path, images: int) -> bool:
    """Whether `root` holds a dataset of `images` files written before (its truth.csv has that many rows)."""
    truth = root / "truth.csv"
    if not truth.exists():
        return False
    with open(truth, "rb") as handle:
        return sum(1 for _ in handle) == images + 1


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine_line(config: dict) -> str:
    from sqlalchemy import __version__ as sqlalchemy_version

    return (f"machine: {os.cpu_count()} cores ({cpu_model()}), {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GB, "
            f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy_version}; database {config['db']}; "
            f"executor {config['executor']}, {config['workers']} workers")


def measure_costs(stages: dict[str, StageResult], images: int, workers: int, *, full_size: bool = False) -> Costs:
    """Per-image costs from the stages. The mislabel check's fits and memory come from its two subsamples;
    with `full_size` and a warm full audit measured, from the larger subsample and the full audit (its
    fits and peak at every photo: what the projection to more listings should grow from)."""
    scan, duplicate = stages["scan"].details, stages["duplicate"].details
    cheap = sum(stages["cheap"].details["seconds"].values())
    audit = stages["audit"].details["seconds"]
    costs = Costs(
        images=images, workers=workers, scan_serial=scan["serial_cpu_s"] / images,
        scan_parallel_cpu=(stages["scan"].cpu_s - scan["serial_cpu_s"]) / images, cheap=cheap / images,
        duplicate=max(0.0, duplicate["seconds"]["duplicate"] - duplicate["hash_search_s"]) / images,
        hash_search=duplicate["hash_search_s"] / images,
        audit_overhead=max(0.0, stages["audit"].work_s - sum(audit.values())) / images,
    )
    if "mislabel_small" in stages:
        small, large = stages["mislabel_small"], stages["mislabel_large"]
        small_n, large_n = small.details["samples"], large.details["samples"]
        costs.mislabel_embed_cpu = (large.details["cold_cpu_s"] - large.details["warm_cpu_s"]) / large_n
        costs.mislabel_fit = affine(small_n, small.details["warm_cpu_s"], large_n, large.details["warm_cpu_s"])
        costs.mislabel_memory = affine(small_n, small.peak_rss, large_n, large.peak_rss)
        if full_size and "prefill" in stages:
            costs.mislabel_fit = affine(large_n, large.details["warm_cpu_s"], images, audit["mislabel"])
            costs.mislabel_memory = affine(large_n, large.peak_rss, images, stages["audit"].peak_rss)
    return costs


def mislabel_lines(stages: dict[str, StageResult]) -> list[str]:
    """The mislabel subsamples: cold (embedding) and warm (fits only) seconds, planted mislabels found."""
    lines = []
    for name in ("mislabel_small", "mislabel_large"):
        if name in stages:
            details = stages[name].details
            found = details["found"]
            lines.append(f"{name}: {details['samples']:,} photos, {details['cold_s']:.1f} s with embedding "
                         f"({details['cold_cpu_s']:.1f} s CPU), {details['warm_s']:.1f} s with embeddings cached; "
                         f"{found['flagged']} flagged, {found['found']} of {found['planted']} planted mislabels found")
    return lines


def full_audit_line(args: argparse.Namespace, costs: Costs, audit: StageResult, predicted: float) -> str:
    """The projected full audit at --images on this machine against the measured one: as measured (cold),
    or with the embedding cache filled (warm) plus the projected embedding time."""
    embedding = costs.mislabel_embed_cpu * args.images / args.workers
    line = (f"full audit at {args.images:,} on this machine: projected {predicted:,.0f} s (embedding {embedding:,.0f} s "
            f"of it) and {costs.mislabel_peak_bytes(args.images) / 2**30:.2f} GB at the peak; ")
    if args.full_audit == "cold":
        return line + f"measured {audit.work_s:,.0f} s and {audit.peak_rss / 2**30:.2f} GB"
    if args.full_audit == "warm":
        return line + (f"measured with the embedding cache filled {audit.work_s:,.0f} s (+ embedding: "
                       f"{audit.work_s + embedding:,.0f} s) and {audit.peak_rss / 2**30:.2f} GB")
    return line + "not measured (--full-audit measures it)"


def projection_table(rows: list[dict], listings: int) -> str:
    def hours(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{value / 3600:.2f}"

    lines = [f"Projection to {listings:,} listings, hours (memory of the mislabel check's embeddings, GB)",
             "| machine | scan | cheap checks | duplicates | mislabel | full audit | mislabel memory GB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        memory = "n/a" if row["mislabel_memory_gb"] is None else f"{row['mislabel_memory_gb']:.0f}"
        lines.append(f"| {row['machine']} | {hours(row['scan'])} | {hours(row['cheap'])} | {hours(row['duplicate'])} | "
                     f"{hours(row['mislabel'])} | {hours(row['audit'])} | {memory} |")
    return "\n".join(lines)


def run_benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    data = Path(args.data) if args.data else workdir / "photos"
    config = {"db": args.db or str(workdir / "scale.db"), "root": str(data.absolute()), "images": args.images,
              "seed": args.seed, "workers": args.workers, "executor": args.executor, "repeat": args.repeat,
              "apptest": not args.no_apptest}
    print(machine_line(config))
    load_before = load_average()
    print(f"load average at the start: {load_before}")
    stages: dict[str, StageResult] = {}
    if already_written(data, args.images):
        print(f"reusing the {args.images:,} photos in {data}")
    else:
        stages["generate"] = run_stage("generate", config, workdir)
    stages["scan"] = run_stage("scan", config, workdir)
    config["dataset_id"] = stages["scan"].details["dataset_id"]
    stages["cheap"] = run_stage("cheap", config, workdir)
    stages["duplicate"] = run_stage("duplicate", config, workdir)
    if args.mislabel == "sample":
        quarter = max(1, args.mislabel_sample // 4)
        stages["mislabel_small"] = run_stage("mislabel_sample", {**config, "sample": quarter, "skip": 0}, workdir,
                                             label="mislabel_small")
        stages["mislabel_large"] = run_stage("mislabel_sample", {**config, "sample": args.mislabel_sample,
                                                                 "skip": quarter}, workdir, label="mislabel_large")
    from core.audit.run import available_checks

    if args.full_audit == "warm":
        stages["prefill"] = run_stage("prefill", config, workdir)
    checks = [name for name in available_checks() if args.full_audit != "none" or name != "mislabel"]
    stages["audit"] = run_stage("audit", {**config, "checks": checks}, workdir)
    reviews = {f"{args.images:,} listings": run_stage("review", config, workdir).details}
    if args.bulk:
        bulk = run_stage("bulk", {**config, "bulk": args.bulk, "bulk_root": str(workdir / "bulk")}, workdir)
        stages["bulk"] = bulk
        reviews[f"{args.bulk:,} samples (bulk)"] = run_stage(
            "review", {**config, "dataset_id": bulk.details["dataset_id"]}, workdir, label="review_bulk").details
    load_after = load_average()
    costs = measure_costs(stages, args.images, args.workers)
    grown = measure_costs(stages, args.images, args.workers, full_size=True)
    machines = [Machine(f"this machine ({args.workers} cores)", args.workers, None),
                Machine("16 cores + 1 GPU", 16, args.gpu_images_per_s),
                Machine(f"Ray cluster, {args.cluster_cores} CPU cores", args.cluster_cores, None)]
    projected = projection(grown, machines, PROJECTED_LISTINGS)
    predicted_audit = projection(costs, machines[:1], args.images)[0]["audit"]
    print()
    print(f"load average at the start: {load_before}; at the end: {load_after}")
    print(stage_table(list(stages.values()), args.images))
    print()
    for name, review in reviews.items():
        print(review_table(name, review))
        print()
    print("\n".join(mislabel_lines(stages)))
    duplicate = stages["duplicate"].details
    print(f"duplicates: {duplicate['planted_found']} of {duplicate['planted']} planted copies grouped with their "
          f"original; hash search alone {duplicate['hash_search_s']:.2f} s\n")
    print(projection_table(projected, PROJECTED_LISTINGS))
    print(ASSUMPTIONS.format(search=hash_search_factor(args.images, PROJECTED_LISTINGS), target=PROJECTED_LISTINGS,
                             gpu=args.gpu_images_per_s, cluster_cores=args.cluster_cores))
    if predicted_audit is not None:
        print(full_audit_line(args, costs, stages["audit"], predicted_audit))
    print("\n".join(targets_met(stages, reviews)))
    return {"config": config, "load_before": load_before, "load_after": load_after,
            "stages": {name: asdict(result) for name, result in stages.items()}, "reviews": reviews,
            "costs": asdict(costs), "costs_full_size": asdict(grown), "projection": projected,
            "predicted_audit_s": predicted_audit}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=positive_int, default=100_000, help="listing photos to generate")
    parser.add_argument("--db", default=None, help="database file or URL, empty (default: a new SQLite file)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help="where image work runs")
    parser.add_argument("--workers", type=positive_int, default=len(os.sched_getaffinity(0)),
                        help="processes for generating and scanning (default: all cores)")
    parser.add_argument("--data", default=None, help="folder for the photos, kept and reused (default: temporary)")
    parser.add_argument("--mislabel", choices=MISLABEL_MODES, default="sample",
                        help="measure the mislabel check on two subsamples (default) or not at all")
    parser.add_argument("--mislabel-sample", type=positive_int, default=5000,
                        help="the larger subsample of the mislabel check (the smaller is a quarter of it)")
    parser.add_argument("--full-audit", choices=FULL_AUDIT_MODES, default="none",
                        help="the audit stage runs the mislabel check too: embedding every photo (cold), or with "
                             "the embedding cache filled from real embeddings of a few photos per class (warm)")
    parser.add_argument("--bulk", type=int, default=0, help="samples of the bulk-inserted dataset (0: none)")
    parser.add_argument("--repeat", type=positive_int, default=5, help="rounds of each Review measurement")
    parser.add_argument("--no-apptest", action="store_true", help="do not render the Review page in AppTest")
    parser.add_argument("--gpu-images-per-s", type=float, default=5000.0,
                        help="the projection's GPU embedding throughput per view (default: issue 10's target)")
    parser.add_argument("--cluster-cores", type=positive_int, default=128, help="the projected Ray cluster's cores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write every number to this file")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.stage:
        return stage_main(args.stage, Path(args.config), Path(args.result))
    unavailable = executor_available(args.executor)
    if unavailable:
        print(f"error: --executor {args.executor}: {unavailable}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        report = run_benchmark(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
