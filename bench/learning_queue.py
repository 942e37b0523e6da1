"""Does a queue that learns from the reviewer find more label errors than the static one? A simulated reviewer.

For each demo dataset (with truth.csv): the mislabel check's evidence as shipped (bench/mislabel.py's context,
with its embedding cache), then a careful reviewer works the listings in batches of --batch, deciding each by
truth.csv, for --reviews decisions, in two orders:
- static: the check's ranking, least self-confident first (the app's queue, extended past the flags);
- kNN: after every batch, each open listing moves up by its photo's cosine similarity to the confirmed errors
  that carry its label, and down by its similarity to the refuted ones (above --similar), so a kind of item
  that sellers misfile together surfaces once the reviewer has confirmed one of it.
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


def nearest_with_label(vectors: np.ndarray, labels: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """Per row of unit `vectors` (N, D), the highest cosine similarity to a `decided` row with the same label,
    float (N,); -1 where none."""
    if not len(decided):
        return np.full(len(vectors), -1.0)
    similarity = vectors @ vectors[decided].T
    return np.where(labels[:, None] == labels[decided][None, :], similarity, -1.0).max(axis=1)


def review(order: np.ndarray, truth: np.ndarray, labels: np.ndarray, vectors: np.ndarray | None, *,
           reviews: int, batch: int, similar: float) -> list[int]:
    """Errors found after each batch of a reviewer who decides `reviews` listings by `truth` (N,) bool.
    order: the static ranking, row indices; vectors: unit photo embeddings (N, D) to re-rank by after each
    batch (None: the static order throughout)."""
    rank = np.empty(len(order))
    rank[order] = np.arange(len(order)) / len(order)
    reviewed = np.zeros(len(order), bool)
    current, found = order, []
    while reviewed.sum() < min(reviews, len(order)):
        reviewed[[i for i in current if not reviewed[i]][:batch]] = True
        found.append(int((reviewed & truth).sum()))
        if vectors is not None:
            confirmed = nearest_with_label(vectors, labels, np.flatnonzero(reviewed & truth))
            refuted = nearest_with_label(vectors, labels, np.flatnonzero(reviewed & ~truth))
            lift = np.clip(confirmed - similar, 0, None) / (1 - similar)
            drop = np.clip(refuted - similar, 0, None) / (1 - similar)
            current = np.argsort(rank - 0.5 * lift + 0.25 * drop, kind="stable")
    return found


def study(root: Path, db: Path, *, reviews: int, batch: int, similar: float) -> list[str]:
    context, truth_of = load_context(root, db, {})
    samples, labels = audited_samples(context)
    truth = truth_of.loc[samples["path"]].to_numpy(dtype=bool)
    evidence = gather_evidence(context, samples, labels, resolve_options(context.params, {}))
    issues, scores, count = flag_issues(labels, evidence.combination.pred_probs, evidence.combination.count_probs)
    order = np.argsort(scores, kind="stable")
    vectors = embed_cached([str(root / path) for path in samples["path"]], list(samples["content_hash"]),
                           store=context.embeddings, image_size=160, view="whole").vectors
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    static = review(order, truth, labels, None, reviews=reviews, batch=batch, similar=similar)
    learned = review(order, truth, labels, vectors, reviews=reviews, batch=batch, similar=similar)
    hits = int((issues & truth).sum())
    return [f"{root.name}: {len(labels)} judged, {int(truth.sum())} mislabelled; flagged {count.estimated} "
            f"({count.low}-{count.high}), cleanlab counts {count.cleanlab}; {hits} of the flags are errors",
            "  reviewed: " + " ".join(f"{batch * (k + 1):>4}" for k in range(len(static))),
            "  static:   " + " ".join(f"{found:>4}" for found in static),
            "  kNN:      " + " ".join(f"{found:>4}" for found in learned)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-mislabel.db"),
                        help="benchmark database (scans and the embedding cache; never the app's)")
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--batch", type=int, default=20, help="decisions between two re-rankings")
    parser.add_argument("--similar", type=float, default=0.75,
                        help="cosine similarity above which a decided photo moves a listing (0..1)")
    args = parser.parse_args()
    print(f"# {platform.node()} · {platform.processor() or platform.machine()}")
    for root in args.datasets:
        print("\n".join(study(root, args.db, reviews=args.reviews, batch=args.batch, similar=args.similar)),
              flush=True)


if __name__ == "__main__":
    main()
