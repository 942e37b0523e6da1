"""Review at scale: Review page render time and decision latency with 100,000 samples and 10,000 flags.

Usage: python bench/review.py [--samples 100000] [--flags 10000] [--corrections 2000] [--repeat 7]

The database is generated with bulk inserts (no scan): 10 classes, prices,
an audit job whose flags are mislabels, price outliers, duplicate groups of
three and broken files, and earlier decisions on some flagged samples. Only a
few images exist on disk (the ones a page shows first); the rest are rows.

Measured:
- render, cold: wall and CPU time (this process, all threads) of an AppTest run of pages/2_Review.py right after a decision, so
  every cached query misses (the data version changed), as after each click;
- render, warm: a rerun with nothing changed (cache hits), as when moving the queue cursor on one page;
- queue SQL: queue_count + queue_page of the open queue, without Streamlit;
- decision: `decide` + commit of one relabel, in its own transaction;
- bulk: `decide_many` of 50 relabels + commit.
Medians over --repeat runs after one warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from db.corrections import Decision, decide, decide_many  # noqa: E402
from db.engine import make_engine, make_session_factory  # noqa: E402
from db.models import Correction, Dataset, Flag, Job, Sample, utcnow  # noqa: E402
from db.queries import dataset_classes  # noqa: E402
from db.review import QueueFilter, queue_count, queue_page  # noqa: E402

CLASSES = [f"class_{index}" for index in range(10)]
IMAGES_PER_CLASS = 6
PAGE = Path(__file__).resolve().parent.parent / "pages" / "2_Review.py"


def write_images(root: Path, paths: list[str]) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        Image.fromarray(blocks).resize((96, 96)).save(target, quality=85)


def generate(factory, root: Path, *, samples: int, flags: int, corrections: int, seed: int = 0) -> dict:
    """Fill the database; returns ids the measurements need."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), size=samples)
    base_price = np.exp(rng.uniform(np.log(10), np.log(2000), size=len(CLASSES)))
    prices = base_price[labels] * np.exp(rng.normal(0, 0.3, size=samples))
    with factory.begin() as session:
        dataset = Dataset(root=str(root), name=root.name, scanned_at=utcnow(),
                          last_scan_json=json.dumps({"classes": {c: 0 for c in CLASSES}}))
        session.add(dataset)
        session.flush()
        dataset_id = dataset.id
        rows = []
        for index in range(samples):
            label = CLASSES[labels[index]]
            # The first images of each class exist on disk and sort first by hash, so examples show them.
            real = index < IMAGES_PER_CLASS * len(CLASSES)
            rows.append({
                "dataset_id": dataset_id, "path": f"{label}/img_{index:06d}.jpg", "label": label,
                "file_size": 1000, "mtime_ns": 1, "readable": True,
                "content_hash": ("0" if real else "1") + f"{rng.integers(0, 2**62):062x}",
                "phash": f"{rng.integers(0, 2**62):016x}", "width": 96, "height": 96, "mode": "RGB",
                "price": float(prices[index]), "listing_id": f"L{index}", "title": f"item {index}",
            })
        session.execute(insert(Sample), rows)
        sample_ids = np.array(session.scalars(select(Sample.id).where(Sample.dataset_id == dataset_id)
                                              .order_by(Sample.id)).all())
        job = Job(dataset_id=dataset_id, kind="audit", status="succeeded", progress=1.0,
                  created_at=utcnow(), finished_at=utcnow())
        session.add(job)
        session.flush()
        flagged = rng.choice(len(sample_ids), size=flags, replace=False)
        kinds = rng.choice(["mislabel", "price", "duplicate", "broken"], size=flags, p=[0.6, 0.2, 0.15, 0.05])
        flag_rows = []
        duplicates = 0  # every three duplicate flags form one group
        for index, kind in zip(flagged, kinds):
            given = CLASSES[labels[index]]
            suggested = CLASSES[(labels[index] + 1 + rng.integers(0, len(CLASSES) - 1)) % len(CLASSES)]
            evidence: dict = {}
            if kind == "mislabel":
                p = float(rng.uniform(0.5, 0.99))
                evidence = {"suggested_probability": p,
                            "top3": [[suggested, p], [given, (1 - p) * 0.7], [CLASSES[0], (1 - p) * 0.3]]}
            elif kind == "price":
                evidence = {"price": float(prices[index]), "class_median": float(base_price[labels[index]])}
            elif kind == "duplicate":
                duplicates += 1
            flag_rows.append({
                "job_id": job.id, "sample_id": int(sample_ids[index]), "kind": str(kind),
                "score": float(rng.uniform(0, 1)), "given_label": given,
                "suggested_label": suggested if kind == "mislabel" else None,
                "group_id": (duplicates - 1) // 3 if kind == "duplicate" else None,
                "reason": f"{kind} found by the benchmark", "evidence_json": json.dumps(evidence),
            })
        session.execute(insert(Flag), flag_rows)
    decided = rng.choice(flagged, size=min(corrections, flags), replace=False)
    with factory.begin() as session:
        for index in decided:
            sample = session.get(Sample, int(sample_ids[index]))
            decide(session, sample, "keep", classes=CLASSES, reviewer="earlier")
    # The worst flags' images exist, so the page shows real pictures.
    with factory() as session:
        worst = session.scalars(select(Sample.path).join(Flag, Flag.sample_id == Sample.id)
                                .order_by(Flag.score).limit(40)).all()
    examples = [f"{CLASSES[labels[i]]}/img_{i:06d}.jpg" for i in range(IMAGES_PER_CLASS * len(CLASSES))]
    write_images(root, list(worst) + examples)
    undecided = np.setdiff1d(flagged, decided)
    return {"dataset_id": dataset_id, "job_id": job.id,
            "free_samples": [int(sample_ids[i]) for i in np.setdiff1d(np.arange(samples), flagged)[:2000]],
            "undecided": [int(sample_ids[i]) for i in undecided]}


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def measure_render(factory, ids: dict, repeat: int) -> dict:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(PAGE), default_timeout=120)
    app.session_state["reviewer"] = "bench"
    started = time.perf_counter()
    app.run()
    first = time.perf_counter() - started
    assert not app.exception, app.exception
    heading = app.subheader[0].value
    cold, cold_cpu, warm = [], [], []
    free = iter(ids["free_samples"])
    for _ in range(repeat + 1):
        with factory.begin() as session:  # a decision elsewhere changes the data version: every query reruns
            decide(session, session.get(Sample, next(free)), "keep", classes=CLASSES, reviewer="other")
        started, started_cpu = time.perf_counter(), time.process_time()
        app.run()
        cold.append(time.perf_counter() - started)
        cold_cpu.append(time.process_time() - started_cpu)
        started = time.perf_counter()
        app.run()
        warm.append(time.perf_counter() - started)
        assert not app.exception, app.exception
    return {"first_render_ms": first * 1000, "render_cold_ms": median_ms(cold[1:]),
            "render_cold_cpu_ms": median_ms(cold_cpu[1:]),
            "render_warm_ms": median_ms(warm[1:]), "heading": heading}


def measure_queue_sql(factory, ids: dict, repeat: int) -> float:
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        with factory() as session:
            queue_count(session, ids["job_id"], QueueFilter(state="open"))
            queue_page(session, ids["job_id"], QueueFilter(state="open"), offset=0, limit=20)
        times.append(time.perf_counter() - started)
    return median_ms(times[1:])


def measure_decisions(factory, ids: dict, repeat: int) -> tuple[float, float]:
    candidates = iter(ids["undecided"])
    single = []
    for _ in range(repeat * 3 + 1):
        sample_id = next(candidates)
        started = time.perf_counter()
        with factory.begin() as session:
            sample = session.get(Sample, sample_id)
            classes = CLASSES
            target = classes[(classes.index(sample.label) + 1) % len(classes)]
            last = session.scalar(select(Correction.id).where(Correction.sample_id == sample_id)
                                  .order_by(Correction.id.desc()).limit(1)) or 0
            decide(session, sample, "relabel", classes=classes, new_label=target, reviewer="bench",
                   expected_last_id=last)
        single.append(time.perf_counter() - started)
    bulk = []
    for _ in range(repeat + 1):
        batch = [next(candidates) for _ in range(50)]
        started = time.perf_counter()
        with factory.begin() as session:
            labels = dict(session.execute(select(Sample.id, Sample.label).where(Sample.id.in_(batch))).all())
            decide_many(session, [
                Decision(sid, "relabel", CLASSES[(CLASSES.index(labels[sid]) + 1) % len(CLASSES)])
                for sid in batch
            ], classes=CLASSES, reviewer="bench")
        bulk.append(time.perf_counter() - started)
    return median_ms(single[1:]), median_ms(bulk[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--corrections", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db_file = Path(folder) / "bench.db"
        os.environ["LISTING_AUDIT_DB"] = str(db_file)
        os.environ.pop("LISTING_AUDIT_DATASET", None)
        factory = make_session_factory(make_engine(db_file))
        started = time.perf_counter()
        ids = generate(factory, Path(folder) / "shop", samples=args.samples, flags=args.flags,
                       corrections=args.corrections)
        generated = time.perf_counter() - started
        with factory() as session:
            assert dataset_classes(session, ids["dataset_id"]) == CLASSES
        render = measure_render(factory, ids, args.repeat)
        queue_ms = measure_queue_sql(factory, ids, args.repeat)
        decision_ms, bulk_ms = measure_decisions(factory, ids, args.repeat)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"data: {args.samples:,} samples, {args.flags:,} flags, {args.corrections:,} earlier decisions "
          f"(generated in {generated:.1f} s)")
    print(f"first render (empty caches, images decoded): {render['first_render_ms']:8.1f} ms")
    print(f"render after a decision (cache misses):      {render['render_cold_ms']:8.1f} ms  (target < 1000; "
          f"CPU {render['render_cold_cpu_ms']:.1f} ms)")
    print(f"rerun with nothing changed (cache hits):     {render['render_warm_ms']:8.1f} ms")
    print(f"queue SQL (count + page of 20):              {queue_ms:8.1f} ms")
    print(f"decision (decide + commit):                  {decision_ms:8.1f} ms  (target < 100)")
    print(f"bulk of 50 decisions (decide_many + commit): {bulk_ms:8.1f} ms")
    print(f"page showed: {render['heading']}")


if __name__ == "__main__":
    main()
