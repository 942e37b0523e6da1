"""How many label errors the evidence can back, with an interval, and whether it is strong enough to say so.

cleanlab's count (the off-diagonal of the confident joint) counts every listing whose evidence points
confidently at another class: the label errors, and the members' own mistakes. Where the members are
accurate the two are nearly the same; with about 100 listings a class, or pictures unlike ImageNet's,
the members' mistakes outnumber the label errors and the count runs away (1.7x the truth on the photo
demo at 100 a class, docs/mislabel.md).

The calibrated count reads the noise rate where the evidence is surest instead: among the
CONFIDENT_SHARE of listings whose label-independent evidence is most confident, the share whose given
label is not the evidence's class. There the members' own mistakes are rare, while label noise that does
not depend on the picture (a seller picking the wrong category) is as frequent as anywhere, so the share
estimates the dataset's noise rate; times the listings, the count. Its interval is the Wilson interval
of that share. Where cleanlab's count lies inside that interval the two agree, and cleanlab's (read from
every listing, not a sixth of them) is the estimate; outside it the calibrated count is. Noise that
favours hard-to-read items, or kinds of item misfiled together, is underestimated: the count is then a
floor, and the reviewer's own decisions (core.audit.evidence.precision, and on the ranking past the
budget) say how far past it the queue stays worth reading.

The evidence is weak when cleanlab's count runs past the calibrated interval (the members' own mistakes
counted as label errors), when the interval is wide, or when the noise rate is implausible: then the flags
are a ranking with a review budget, not a count to trust, and the ranking goes on past the budget to
cleanlab's own count (`IssueCount.ranked`): where sellers misfile a kind of item together the calibrated
count is only a floor (docs/mislabel.md), and the reviewer's decisions past it say whether to go on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from cleanlab.count import num_label_issues
from scipy.stats import chi2_contingency

#: Share of the listings, the most confident by the label-independent evidence, whose disagreement with
#: their given labels estimates the noise rate. Measured on eight datasets (docs/mislabel.md): 0.10-0.20
#: stays within 0.85-1.25x of the truth; from 0.30 the members' own mistakes creep in (up to 1.6x).
CONFIDENT_SHARE = 0.15
#: Fewest listings in the confident set (a dataset of 200 listings reads the top 50).
MIN_CONFIDENT_ROWS = 50
#: The confident set's disagreement differs between classes below this p-value (chi-square): the noise is
#: class-dependent and the pooled rate cannot stand for every class (measured: 1.7e-8 on Fashion items with
#: noise among look-alike classes only; 0.085-0.49 on seven datasets of uniform noise).
HETEROGENEITY_P = 0.01
#: Classes with fewer confident rows are left out of the heterogeneity test.
MIN_CLASS_CONFIDENT_ROWS = 5
#: Bootstrap resamples of cleanlab's count, for its interval.
BOOTSTRAP_ROUNDS = 40
#: z of the two-sided 95% interval.
Z_95 = 1.96
#: The evidence is weak when the interval's width is more than this share of the estimate...
MAX_RELATIVE_WIDTH = 1.0
#: ... or when more than this share of the listings is estimated to be mislabelled.
MAX_PLAUSIBLE_NOISE = 0.35


@dataclass(frozen=True)
class IssueCount:
    """estimated: the calibrated number of label issues, with its 95% interval [low, high]; cleanlab: the
    confident joint's count on the same probabilities; disagreements: listings whose evidence's top class
    is not the given label; confident_rows: the size of the set the noise rate was read in; weak: whether
    the evidence cannot back a count (then `reasons`, one phrase each)."""

    estimated: int
    low: int
    high: int
    cleanlab: int
    disagreements: int
    confident_rows: int
    rows: int
    weak: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def noise_rate(self) -> float:
        return self.estimated / max(self.rows, 1)

    @property
    def evidence_mistakes(self) -> int:
        """Listings whose evidence points elsewhere though (by the estimate) their label is right."""
        return max(self.disagreements - self.estimated, 0)

    @property
    def ranked(self) -> int:
        """How many listings the ranking holds: the estimate; where the evidence is weak, on to cleanlab's own
        count when that is larger (at most MAX_PLAUSIBLE_NOISE of the listings)."""
        if not self.weak:
            return self.estimated
        return max(self.estimated, min(self.cleanlab, int(MAX_PLAUSIBLE_NOISE * self.rows)))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ranked": self.ranked, "noise_rate": round(self.noise_rate, 4),
                "evidence_mistakes": self.evidence_mistakes}


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share, (low, high) in [0, 1]; (0, 1) for no trials."""
    if trials <= 0:
        return 0.0, 1.0
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def confident_rows(count_probs: np.ndarray, *, share: float = CONFIDENT_SHARE) -> np.ndarray:
    """Indices of the ceil(share * N) rows (at least MIN_CONFIDENT_ROWS, at most N) whose largest
    probability in `count_probs` (N, K) is highest, most confident first."""
    n = len(count_probs)
    size = min(n, max(MIN_CONFIDENT_ROWS, int(np.ceil(share * n))))
    return np.argsort(-count_probs.max(axis=1), kind="stable")[:size]


def count_label_issues(labels: np.ndarray, count_probs: np.ndarray, *,
                       confident_share: float = CONFIDENT_SHARE) -> IssueCount:
    """The number of label issues among `labels` (int (N,)) under `count_probs` (N, K), out-of-fold
    probabilities from evidence written independently of the labels: cleanlab's count where the calibrated
    interval holds it, else the calibrated count; see the module docstring."""
    n = len(labels)
    top = confident_rows(count_probs, share=confident_share)
    wrong = int((count_probs[top].argmax(axis=1) != labels[top]).sum())
    low_share, high_share = wilson_interval(wrong, len(top))
    low, high = int(np.floor(low_share * n)), int(np.ceil(high_share * n))
    cleanlab = int(num_label_issues(labels, count_probs))
    runaway = False
    if class_dependent_noise(labels[top], count_probs[top].argmax(axis=1)):
        estimated = cleanlab
        low, high = bootstrap_interval(labels, count_probs)
    elif low <= cleanlab <= high:
        estimated = cleanlab
    else:
        estimated = int(round(wrong / max(len(top), 1) * n))
        runaway = cleanlab > high
    disagreements = int((count_probs.argmax(axis=1) != labels).sum())
    reasons = weak_evidence_reasons(estimated, low, high, n, runaway_count=cleanlab if runaway else None)
    return IssueCount(estimated, low, high, cleanlab, disagreements, len(top), n, bool(reasons), reasons)


def class_dependent_noise(labels: np.ndarray, predicted: np.ndarray) -> bool:
    """Whether the share of `labels` (int (m,)) that differ from `predicted` (int (m,)) depends on the
    predicted class (chi-square test over classes with MIN_CLASS_CONFIDENT_ROWS rows, p < HETEROGENEITY_P)."""
    wrong = labels != predicted
    table = np.array([[np.sum(wrong & (predicted == k)), np.sum(~wrong & (predicted == k))]
                      for k in np.unique(predicted) if np.sum(predicted == k) >= MIN_CLASS_CONFIDENT_ROWS])
    if len(table) < 2:
        return False
    return bool(chi2_contingency(table + 0.5).pvalue < HETEROGENEITY_P)


def bootstrap_interval(labels: np.ndarray, count_probs: np.ndarray, *, seed: int = 0) -> tuple[int, int]:
    """The 2.5th and 97.5th percentiles of cleanlab's count over BOOTSTRAP_ROUNDS resamples of the rows."""
    rng = np.random.default_rng(seed)
    n, k = count_probs.shape
    counts = []
    for _ in range(BOOTSTRAP_ROUNDS):
        rows = rng.integers(0, n, n)
        if len(np.unique(labels[rows])) < k:  # cleanlab needs every class in the labels
            continue
        counts.append(num_label_issues(labels[rows], count_probs[rows]))
    if not counts:
        return 0, n
    return int(np.floor(np.percentile(counts, 2.5))), int(np.ceil(np.percentile(counts, 97.5)))


def weak_evidence_reasons(estimated: int, low: int, high: int, rows: int, *,
                          runaway_count: int | None = None) -> list[str]:
    """Why a count of `estimated` label issues in [low, high] among `rows` listings cannot be backed; empty
    when it can. runaway_count: cleanlab's count where it ran past `high`."""
    reasons = []
    if runaway_count is not None:
        reasons.append(f"cleanlab counts {runaway_count} listings whose evidence points elsewhere, but only about "
                       f"{estimated} look wrong where the evidence is surest: it misreads many listings itself")
    if high - low > MAX_RELATIVE_WIDTH * max(estimated, 1):
        reasons.append("the interval is wide")
    if estimated > MAX_PLAUSIBLE_NOISE * rows:
        reasons.append(f"{estimated / rows:.0%} of the listings would be mislabelled, more than is plausible")
    return reasons
