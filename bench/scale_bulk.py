"""A large dataset bulk-inserted into a database (no scan): samples, one audit's flags, earlier decisions.
Part of bench/scale.py, for the Review page's queries at 1,000,000 samples.

The first rows take the paths, classes, prices and titles of a dataset written by bench/scale_data.py,
under a second root that links to it, so the page shows real photos; the rest are rows whose files do
not exist. Flags: 60% mislabels, 20% price outliers, 15% duplicates in groups of three, 5% broken.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import insert, select

from db.models import Correction, Dataset, Flag, Job, Sample, utcnow

BATCH = 20_000
KINDS = ("mislabel", "price", "duplicate", "broken")
KIND_SHARES = (0.6, 0.2, 0.15, 0.05)
DUPLICATE_GROUP = 3


def _insert(session, model, rows: list[dict]) -> None:
    """Core executemany inserts of `rows` into `model`'s table, BATCH rows at a time."""
    for start in range(0, len(rows), BATCH):
        session.execute(insert(model.__table__), rows[start:start + BATCH])


def _sample_table(source_root: Path, samples: int, rng: np.random.Generator) -> pd.DataFrame:
    """path, label, price, title of `samples` rows: the source dataset's listings first, then made-up ones."""
    listings = pd.read_csv(source_root / "listings.csv", keep_default_na=False)
    listings["label"] = listings["path"].str.split("/").str[0]
    real = listings.iloc[:samples]
    extra = samples - len(real)
    classes = sorted(listings["label"].unique())
    labels = np.array(classes)[rng.integers(0, len(classes), size=extra)]
    made_up = pd.DataFrame({
        "path": [f"{label}/x{index:08d}.jpg" for index, label in enumerate(labels)],
        "label": labels,
        "price": np.round(np.exp(rng.uniform(np.log(5), np.log(2000), size=extra)), 2),
        "title": [f"{label} item {index}" for index, label in enumerate(labels)],
    })
    return pd.concat([real[["path", "label", "price", "title"]], made_up], ignore_index=True)


def _hex_strings(rng: np.random.Generator, count: int, digits: int) -> list[str]:
    """`count` random hex strings of `digits` digits."""
    text = rng.bytes(count * digits // 2).hex()
    return [text[start:start + digits] for start in range(0, len(text), digits)]


def _sample_rows(dataset_id: int, table: pd.DataFrame, rng: np.random.Generator) -> list[dict]:
    now = utcnow()
    hashes, phashes = _hex_strings(rng, len(table), 64), _hex_strings(rng, len(table), 16)
    stats = rng.uniform(0.1, 0.9, size=(len(table), 4)).tolist()
    return [
        {"dataset_id": dataset_id, "path": path, "label": label, "file_size": 3000, "mtime_ns": 1,
         "content_hash": content_hash, "phash": phash, "width": 96, "height": 96, "mode": "RGB", "readable": True,
         "missing": False, "brightness": brightness, "contrast": contrast, "sharpness": 100 * sharpness,
         "entropy": 8 * entropy, "colorfulness": brightness, "listing_id": f"B{i:08d}", "price": price,
         "title": title, "first_seen_at": now, "scanned_at": now}
        for i, (path, label, price, title, content_hash, phash, (brightness, contrast, sharpness, entropy))
        in enumerate(zip(table["path"].tolist(), table["label"].tolist(), table["price"].tolist(),
                         table["title"].tolist(), hashes, phashes, stats))
    ]


def _flag_rows(job_id: int, sample_ids: np.ndarray, labels: np.ndarray, prices: np.ndarray, classes: list[str],
               flag_rate: float, rng: np.random.Generator) -> list[dict]:
    count = int(len(sample_ids) * flag_rate)
    chosen = rng.choice(len(sample_ids), size=count, replace=False)
    kinds = rng.choice(KINDS, size=count, p=KIND_SHARES)
    scores = rng.uniform(0, 1, size=count)
    rows, duplicates = [], 0
    for position, kind, score in zip(chosen, kinds, scores):
        given = labels[position]
        other = classes[(classes.index(given) + 1 + int(rng.integers(0, len(classes) - 1))) % len(classes)]
        evidence: dict = {}
        group = None
        if kind == "mislabel":
            evidence = {"suggested_probability": 1 - score / 2,
                        "top3": [[other, 1 - score / 2], [given, score / 3], [classes[0], score / 6]]}
        elif kind == "price":
            evidence = {"price": float(prices[position]), "class_median": float(prices[position]) / 50}
        elif kind == "duplicate":
            group = duplicates // DUPLICATE_GROUP + 1
            duplicates += 1
        rows.append({"job_id": job_id, "sample_id": int(sample_ids[position]), "kind": str(kind), "score": float(score),
                     "given_label": given, "suggested_label": other if kind == "mislabel" else None,
                     "group_id": group, "reason": f"{kind} (bulk-inserted)", "evidence_json": json.dumps(evidence)})
    return rows


def _decision_rows(flags: list[dict], labels_by_id: dict[int, str], decided_rate: float,
                   rng: np.random.Generator) -> list[dict]:
    """'keep' decisions on a share of the flagged samples, each its sample's first, made after the audit."""
    sample_ids = sorted({row["sample_id"] for row in flags})
    chosen = rng.choice(sample_ids, size=int(len(sample_ids) * decided_rate), replace=False)
    now = utcnow()
    return [{"sample_id": int(sample_id), "action": "keep", "old_label": labels_by_id[int(sample_id)],
             "new_label": labels_by_id[int(sample_id)], "was_deleted": False, "deleted": False,
             "reviewer": "earlier", "note": "", "previous_id": 0, "created_at": now} for sample_id in chosen]


def insert_bulk_dataset(factory, source_root: Path, bulk_root: Path, *, samples: int, flag_rate: float,
                        decided_rate: float, seed: int) -> dict:
    """Insert the bulk dataset at `bulk_root` (made a link to `source_root`); returns its dataset id, row
    counts and seconds per table."""
    rng = np.random.default_rng([seed, 7])
    if not bulk_root.exists():
        bulk_root.symlink_to(source_root.resolve(), target_is_directory=True)
    table = _sample_table(source_root, samples, rng)
    classes = sorted(table["label"].unique())
    seconds = {}
    started = time.perf_counter()
    with factory.begin() as session:
        dataset = Dataset(root=str(bulk_root.absolute()), name=bulk_root.name, scanned_at=utcnow(),
                          last_scan_json=json.dumps({"classes": {name: 0 for name in classes}}))
        session.add(dataset)
        session.flush()
        dataset_id = dataset.id
        _insert(session, Sample, _sample_rows(dataset_id, table, rng))
    seconds["samples"] = time.perf_counter() - started
    started = time.perf_counter()
    with factory.begin() as session:
        ids = np.array(session.scalars(select(Sample.id).where(Sample.dataset_id == dataset_id).order_by(Sample.id)).all())
        job = Job(dataset_id=dataset_id, kind="audit", status="succeeded", progress=1.0, params_json="{}",
                  created_at=utcnow(), finished_at=utcnow())
        session.add(job)
        session.flush()
        flags = _flag_rows(job.id, ids, table["label"].to_numpy(), table["price"].to_numpy(), classes, flag_rate, rng)
        _insert(session, Flag, flags)
        kinds = pd.Series([row["kind"] for row in flags]).value_counts()
        job.result_json = json.dumps({"flags_by_kind": {kind: int(kinds.get(kind, 0)) for kind in KINDS},
                                      "class_sizes": {k: int(v) for k, v in table["label"].value_counts().items()}})
    seconds["flags"] = time.perf_counter() - started
    started = time.perf_counter()
    decisions = _decision_rows(flags, dict(zip(ids.tolist(), table["label"])), decided_rate, rng)
    with factory.begin() as session:
        _insert(session, Correction, decisions)
    seconds["decisions"] = time.perf_counter() - started
    return {"dataset_id": dataset_id, "samples": samples, "flags": len(flags), "decisions": len(decisions),
            "insert_seconds": seconds}
