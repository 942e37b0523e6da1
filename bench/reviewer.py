"""How many label errors the mislabel check flags on datasets of other kinds, and a simulated reviewer.

For each demo dataset (with truth.csv): the mislabel check's evidence as shipped (bench/mislabel.py's
context: the benchmark database caches embeddings), its count of label issues (core.audit.evidence.count)
against the truth, with cleanlab's own count beside it, and the flags' precision, recall and F1, beside
a naive baseline (the photo member alone with cleanlab's find_label_issues defaults). Then a
careful reviewer works the flags in the app's order (least self-confident first), deciding each by
truth.csv, and after every 25 decisions the queue's estimated precision (core.audit.evidence.precision) is
printed beside the true one.

    .venv/bin/listing-audit demo --out /tmp/p100 --per-class 100 --seed 5
    .venv/bin/python bench/reviewer.py /tmp/p100 [DATASET ...] --db /tmp/bench-mislabel.db
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mislabel import load_context  # noqa: E402

from core.audit.checks.mislabel import audited_samples  # noqa: E402
from core.audit.evidence.gather import flag_issues, gather_evidence, resolve_options  # noqa: E402
from core.audit.evidence.precision import estimate_queue_precision  # noqa: E402

STEP = 25


def study(root: Path, db: Path, *, decisions: int) -> list[str]:
    context, truth_of = load_context(root, db, {})
    samples, labels = audited_samples(context)
    truth = truth_of.loc[samples["path"]].to_numpy(dtype=bool)
    evidence = gather_evidence(context, samples, labels, resolve_options(context.params, {}))
    combination = evidence.combination
    issues, scores, count = flag_issues(labels, combination.pred_probs, combination.count_probs)
    hits = int((issues & truth).sum())
    precision, recall = hits / max(issues.sum(), 1), hits / max(truth.sum(), 1)
    lines = [f"{root.name}: {len(labels)} judged, {int(truth.sum())} mislabelled; cleanlab counts {count.cleanlab}, "
             f"flagged {count.estimated} ({count.low}-{count.high}, {count.estimated / max(truth.sum(), 1):.2f}x); "
             f"weak: {'; '.join(count.reasons) or 'no'}; P {precision:.3f} R {recall:.3f} "
             f"F1 {2 * precision * recall / max(precision + recall, 1e-12):.3f}"]
    naive = find_label_issues(labels, next(o for o in evidence.outputs if o.name == "photo").pred_probs)
    naive_hits = int((naive & truth).sum())
    naive_p, naive_r = naive_hits / max(naive.sum(), 1), naive_hits / max(truth.sum(), 1)
    lines.append(f"  naive baseline (the photo member alone, cleanlab's find_label_issues defaults): flagged "
                 f"{int(naive.sum())}, P {naive_p:.3f} R {naive_r:.3f} "
                 f"F1 {2 * naive_p * naive_r / max(naive_p + naive_r, 1e-12):.3f}")
    queue = np.flatnonzero(issues)[np.argsort(scores[issues], kind="stable")]
    for done in range(STEP, min(decisions, len(queue) - 1) + 1, STEP):
        decided, still_open = queue[:done], queue[done:]
        estimate = estimate_queue_precision(scores, count.estimated, scores[decided], truth[decided],
                                            scores[still_open], errors_interval=(count.low, count.high))
        lines.append(f"  after {done:>3} decisions: precision estimated {estimate.precision:.3f} "
                     f"({estimate.low:.2f}-{estimate.high:.2f}), true {truth[queue].mean():.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", type=Path, nargs="+", help="demo dataset folders with truth.csv")
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-mislabel.db"),
                        help="benchmark database (kept: embeddings are cached in it)")
    parser.add_argument("--decisions", type=int, default=100, help="decisions the simulated reviewer makes")
    args = parser.parse_args()
    print(f"machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}; load average " + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    for root in args.datasets:
        print("\n".join(study(root.resolve(), args.db, decisions=args.decisions)), flush=True)


if __name__ == "__main__":
    main()
