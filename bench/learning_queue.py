"""Does a queue that learns from the reviewer find more label errors than the static one? A simulated reviewer.

For each demo dataset (with truth.csv): the mislabel check's evidence as shipped (bench/mislabel.py's context,
with its embedding cache) and the app's mislabel queue: the flags, then the ranking past a weak budget
(core.audit.evidence.count.IssueCount.ranked). A careful reviewer works it in batches of --batch, deciding each
item by truth.csv, for --reviews decisions or until the queue ends, in two orders:
- static: the check's ranking, least self-confident first;
- taught: after every batch, the open items re-ranked by their photos' likeness to the confirmed and refuted
  flags of their label (taught_order), at the dataset's own similarity scale (LEARNING_QUANTILE of
  core.models.neighbours.lookalike_similarity). Measured, not in the app (docs/mislabel.md).
Prints the errors found after every batch in both orders.

    .venv/bin/listing-audit demo --out /tmp/items200 --per-class 200 --seed 3 --misfiled-items
    .venv/bin/python bench/learning_queue.py /tmp/items200 [DATASET ...] --db /tmp/bench-mislabel.db
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mislabel import load_context  # noqa: E402

from core.audit.checks.mislabel import audited_samples  # noqa: E402
from core.audit.evidence.gather import flag_issues, gather_evidence, resolve_options  # noqa: E402
from core.models.embeddings import embed_cached  # noqa: E402
from core.models.neighbours import lookalike_similarity, unit_rows  # noqa: E402

#: How far a listing's photo must be like a decided one to move in the queue: this quantile of the dataset's
#: similarities of a listing to its most similar photo under another label (lookalike_similarity), so the
#: scale follows the photos' kind (0.72 on listing photos, 0.88 on Fashion items).
LEARNING_QUANTILE = 0.5
#: A listing like a confirmed error moves up by at most this share of the queue; like a refuted flag, down.
LIFT, DROP = 0.5, 0.25
#: Decisions between two re-rankings.
LEARN_EVERY = 10


def taught_order(unit: np.ndarray, labels: np.ndarray, confirmed: tuple[np.ndarray, np.ndarray],
                 refuted: tuple[np.ndarray, np.ndarray], *, similar: float) -> np.ndarray:
    """The open queue re-ranked by the reviewer's decisions: a permutation of its M items (int (M,)).

    unit (M, D): the items' unit photo vectors, in the queue's own order (worst first); labels (M,): the
    labels they were judged under. confirmed, refuted: (unit vectors (C, D), the labels they were judged
    under (C,)) of the listings whose flags the reviewer confirmed or refuted. An item moves up by LIFT of the
    queue times how far its photo is more alike than `similar` to a confirmed error under the same label (a
    kind of item misfiled together), and down by DROP for a refuted one."""
    rank = np.arange(len(unit)) / max(len(unit), 1)
    return np.argsort(rank - LIFT * likeness(unit, labels, *confirmed, similar)
                      + DROP * likeness(unit, labels, *refuted, similar), kind="stable")


def likeness(unit: np.ndarray, labels: np.ndarray, decided: np.ndarray, decided_labels: np.ndarray,
             similar: float) -> np.ndarray:
    """Per row of `unit` (M, D): how far above `similar` its highest cosine to a `decided` row (C, D) under
    the same label is, scaled to [0, 1]; 0 where none is."""
    if not len(decided) or not len(unit):
        return np.zeros(len(unit))
    same = np.asarray(labels)[:, None] == np.asarray(decided_labels)[None, :]
    best = np.where(same, unit @ decided.T, -1.0).max(axis=1)
    return np.clip(best - similar, 0.0, None) / max(1.0 - similar, 1e-6)


def review(queue: np.ndarray, truth: np.ndarray, labels: np.ndarray, unit: np.ndarray | None, *,
           reviews: int, batch: int, similar: float) -> list[int]:
    """Errors found after each batch of a reviewer who decides the `queue` (row indices, worst first) by
    `truth` (N,) bool, for `reviews` decisions or the whole queue; unit: unit photo vectors (N, D) to re-rank
    the open items by after each batch (None: the static order throughout)."""
    open_items, found, confirmed, refuted = list(queue), [], [], []
    while open_items and len(confirmed) + len(refuted) < reviews:
        for row in open_items[:batch]:
            (confirmed if truth[row] else refuted).append(row)
        open_items = open_items[batch:]
        found.append(len(confirmed))
        if unit is not None and open_items:
            rows = np.asarray(open_items)
            order = taught_order(unit[rows], labels[rows], (unit[confirmed], labels[confirmed]),
                                 (unit[refuted], labels[refuted]), similar=similar)
            open_items = list(rows[order])
    return found


def study(root: Path, db: Path, *, reviews: int, batch: int) -> list[str]:
    context, truth_of = load_context(root, db, {})
    samples, labels = audited_samples(context)
    truth = truth_of.loc[samples["path"]].to_numpy(dtype=bool)
    evidence = gather_evidence(context, samples, labels, resolve_options(context.params, {}))
    _, scores, count = flag_issues(labels, evidence.combination.pred_probs, evidence.combination.count_probs)
    queue = np.argsort(scores, kind="stable")[:count.ranked]
    unit = unit_rows(embed_cached([str(root / path) for path in samples["path"]], list(samples["content_hash"]),
                                  store=context.embeddings, image_size=160, view="whole").vectors)
    similar = lookalike_similarity(unit, labels, samples["content_hash"].to_numpy(), quantile=LEARNING_QUANTILE)
    static = review(queue, truth, labels, None, reviews=reviews, batch=batch, similar=similar)
    taught = review(queue, truth, labels, unit, reviews=reviews, batch=batch, similar=similar)
    return [f"{root.name}: {len(labels)} judged, {int(truth.sum())} mislabelled; {count.estimated} flagged "
            f"({count.low}-{count.high}), {count.ranked - count.estimated} more past the budget, "
            f"{int(truth[queue].sum())} errors in the queue; similarity scale {similar:.3f}",
            "  reviewed: " + " ".join(f"{batch * (k + 1):>4}" for k in range(len(static))),
            "  static:   " + " ".join(f"{found:>4}" for found in static),
            "  taught:   " + " ".join(f"{found:>4}" for found in taught)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-mislabel.db"),
                        help="benchmark database (scans and the embedding cache; never the app's)")
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--batch", type=int, default=LEARN_EVERY, help="decisions between two re-rankings")
    args = parser.parse_args()
    print(f"# {platform.node()} · {platform.processor() or platform.machine()}")
    for root in args.datasets:
        print("\n".join(study(root, args.db, reviews=args.reviews, batch=args.batch)), flush=True)


if __name__ == "__main__":
    main()
