"""How precise the mislabel queue is, read from the reviewer's own decisions.

Every decision on a mislabel flag is a trusted label and a sample of the queue's precision: a relabel or
a delete confirms the flag, a keep refutes it. Decisions follow the queue's order, so the flags decided
first are the surest, and neither their share nor the audit's own probabilities (far too sure in the tail:
0.95-0.99 against a true 0.74-0.84 on seven datasets) say how the rest will go. So the chance that a
listing's label is wrong is modelled as P = sigmoid(a + b * logit(1 - score)) over every judged listing,
anchored by the audit's count: a is set so that the P sum to the estimated number of label errors
(core.audit.evidence.count), and the slope b, how sharply the errors gather at the head of the queue, is fitted
to the decisions by maximum likelihood with a log-normal prior around 1. The real errors expected among the
open flags are the sum of their P. The interval is a profile-likelihood one: every slope whose penalised
log-likelihood is within 1.92 (chi-square, 1 degree of freedom, 95%) of the best, at the count's estimate
and at both ends of its interval. (A bootstrap over the decisions collapses when the first decisions all
agree, as they do at the head of a good queue: on eight datasets it missed the true precision in 9 of 24
checks against the profile's 1.)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

#: Width of the log-normal prior on the slope b (log b ~ N(0, PRIOR_WIDTH^2)), and the slopes searched.
#: 0.75 keeps the estimate after 25 to 100 decisions within 0.094 of the truth on eight datasets of
#: other kinds (BENCHMARKS.md); 0.5 let a queue whose head was all confirmed (the photo demo) be read as
#: 0.10-0.12 less precise than it was.
PRIOR_WIDTH = 0.75
SLOPE_RANGE = (0.2, 5.0)
#: Decisions the "last N" share is read from.
RECENT_DECISIONS = 40
#: Slopes the interval is read from (log-spaced over SLOPE_RANGE), and how far below the best penalised
#: log-likelihood a slope may be and stay in it (half the 95% point of chi-square with 1 degree of freedom).
PROFILE_SLOPES = 41
PROFILE_DROP = 1.92
#: Probabilities are clipped to [EDGE, 1 - EDGE] before the logit.
EDGE = 1e-3


@dataclass(frozen=True)
class QueuePrecision:
    """decided / confirmed: decisions on the queue's flags and those that confirmed them; recent /
    recent_confirmed: the same for the last RECENT_DECISIONS; open: flags not decided yet; expected_open:
    real errors expected among them, with its 95% interval [expected_low, expected_high]; precision: the
    whole queue's estimated precision (confirmed plus expected, over all flags), with [low, high]."""

    decided: int
    confirmed: int
    recent: int
    recent_confirmed: int
    open: int
    expected_open: float
    expected_low: float
    expected_high: float
    precision: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        """e.g. "31 of your last 40 decisions confirmed the flag: about 150 (120-180) more real errors expected
        among the 400 open flags; the queue's precision is about 0.62 (0.55-0.70)"."""
        last = "your last " if self.recent < self.decided else "your "
        return (f"{self.recent_confirmed} of {last}{self.recent} decisions confirmed the flag: about "
                f"{self.expected_open:,.0f} ({self.expected_low:,.0f}-{self.expected_high:,.0f}) more real errors "
                f"expected among the {self.open:,} open flags; the queue's precision is about {self.precision:.2f} "
                f"({self.low:.2f}-{self.high:.2f})")


def error_logits(scores: np.ndarray) -> np.ndarray:
    """logit(1 - score): the audit's log-odds that a flagged label is wrong; scores in [0, 1] (N,)."""
    wrong = np.clip(1.0 - np.asarray(scores, dtype=float), EDGE, 1.0 - EDGE)
    return np.log(wrong / (1.0 - wrong))


def anchored_intercept(logits: np.ndarray, slope: float, total: float) -> float:
    """The a with sum(sigmoid(a + slope * logits)) == total (0 < total < len(logits)), by bisection."""
    low, high = -60.0, 60.0
    for _ in range(48):
        middle = (low + high) / 2
        if _sigmoid(middle + slope * logits).sum() < total:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def wrong_probabilities(all_logits: np.ndarray, total: float, decided_logits: np.ndarray,
                        confirmed: np.ndarray) -> tuple[float, float]:
    """(a, b) of the anchored model: the slope in SLOPE_RANGE that makes the decisions (`confirmed` bool (n,)
    at decided_logits (n,)) likeliest under the prior, each slope with the intercept that makes the
    listings' (all_logits (N,)) probabilities sum to `total`; a bounded scalar search on log b."""
    found = minimize_scalar(lambda log_slope: _anchored_fit(all_logits, total, decided_logits, confirmed, log_slope)[0],
                            bounds=tuple(np.log(SLOPE_RANGE)), method="bounded", options={"xatol": 1e-3})
    _, intercept, slope = _anchored_fit(all_logits, total, decided_logits, confirmed, float(found.x))
    return intercept, slope


def _anchored_fit(all_logits: np.ndarray, total: float, decided_logits: np.ndarray, confirmed: np.ndarray,
                  log_slope: float) -> tuple[float, float, float]:
    """(penalised negative log-likelihood of the decisions, intercept, slope) of the model with slope
    exp(log_slope) and the intercept that makes all_logits' probabilities sum to `total`."""
    total = float(np.clip(total, 0.5, len(all_logits) - 0.5))
    slope = float(np.exp(log_slope))
    intercept = anchored_intercept(all_logits, slope, total)
    p = np.clip(_sigmoid(intercept + slope * decided_logits), 1e-9, 1 - 1e-9)
    y = confirmed.astype(float)
    loss = -float((y * np.log(p) + (1 - y) * np.log(1 - p)).sum()) + 0.5 * (log_slope / PRIOR_WIDTH) ** 2
    return loss, intercept, slope


def estimate_queue_precision(all_scores: np.ndarray, estimated_errors: float, decided_scores: np.ndarray,
                             confirmed: np.ndarray, open_scores: np.ndarray, *,
                             errors_interval: tuple[float, float] | None = None) -> QueuePrecision:
    """The mislabel queue's precision. all_scores (N,): the scores of every judged listing, flagged or not;
    estimated_errors: the audit's count of label errors among them (errors_interval: its 95% interval);
    decided_scores (n,) and confirmed (bool (n,), in the order the decisions were made): the flags decided;
    open_scores (m,): the flags still open. Needs at least one decision; see the module docstring."""
    decided_scores, confirmed = np.asarray(decided_scores, dtype=float), np.asarray(confirmed, dtype=bool)
    if len(decided_scores) == 0 or len(decided_scores) != len(confirmed):
        raise ValueError("needs as many confirmations as decided scores, and at least one")
    all_logits, decided_logits, open_logits = error_logits(all_scores), error_logits(decided_scores), \
        error_logits(open_scores)
    a, b = wrong_probabilities(all_logits, estimated_errors, decided_logits, confirmed)
    point = float(_sigmoid(a + b * open_logits).sum())
    totals = sorted({estimated_errors, *(errors_interval or ())})
    plausible = [expected for total in totals
                 for expected in _plausible_expectations(all_logits, total, decided_logits, confirmed, open_logits)]
    low, high = min(plausible + [point]), max(plausible + [point])
    n, total = len(confirmed), len(confirmed) + len(open_logits)
    recent = confirmed[-RECENT_DECISIONS:]
    return QueuePrecision(
        decided=n, confirmed=int(confirmed.sum()), recent=len(recent), recent_confirmed=int(recent.sum()),
        open=len(open_logits), expected_open=point, expected_low=low, expected_high=high,
        precision=(confirmed.sum() + point) / total, low=(confirmed.sum() + low) / total,
        high=(confirmed.sum() + high) / total)


def _plausible_expectations(all_logits: np.ndarray, total: float, decided_logits: np.ndarray,
                            confirmed: np.ndarray, open_logits: np.ndarray) -> list[float]:
    """The errors expected among the open flags (open_logits (m,)) under every slope of PROFILE_SLOPES whose
    penalised log-likelihood of the decisions is within PROFILE_DROP of the best one's, the listings'
    probabilities summing to `total`."""
    fits = [_anchored_fit(all_logits, total, decided_logits, confirmed, log_slope)
            for log_slope in np.linspace(*np.log(SLOPE_RANGE), PROFILE_SLOPES)]
    best = min(loss for loss, _, _ in fits)
    return [float(_sigmoid(intercept + slope * open_logits).sum())
            for loss, intercept, slope in fits if loss <= best + PROFILE_DROP]


#: Decisions on mislabel flags before the queue's precision is shown.
MIN_DECISIONS = 5


def queue_precision(summary: dict[str, Any], flags: pd.DataFrame) -> Optional[QueuePrecision]:
    """The precision of an audit's mislabel queue from the check's summary (assessed, estimated_issues,
    estimated_interval, score_quantiles: core.audit.checks.mislabel) and its flags (one row each: score; decided,
    confirmed, refuted: bool; decided_at, the order the decisions were made in). The quantiles stand for
    every judged listing, so the count and its interval are scaled to them. None before MIN_DECISIONS
    decisions that confirm or refute a flag, or without what the summary needs (an older audit)."""
    quantiles = np.asarray(summary.get("score_quantiles") or [], dtype=float)
    judged, estimated = summary.get("assessed") or 0, summary.get("estimated_issues")
    answered = flags[flags["confirmed"] | flags["refuted"]].sort_values("decided_at", kind="stable")
    if len(answered) < MIN_DECISIONS or len(quantiles) < 2 or not judged or estimated is None:
        return None
    scale = len(quantiles) / judged
    interval = summary.get("estimated_interval")
    return estimate_queue_precision(
        quantiles, estimated * scale, answered["score"].to_numpy(), answered["confirmed"].to_numpy(),
        flags.loc[~flags["decided"], "score"].to_numpy(),
        errors_interval=(interval[0] * scale, interval[1] * scale) if interval else None)
