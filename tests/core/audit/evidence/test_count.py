"""The count of label issues the evidence can back: calibrated on planted noise, honest when the evidence is weak."""
from dataclasses import replace

import numpy as np
import pytest

from core.audit.evidence.count import (CONFIDENT_SHARE, MAX_PLAUSIBLE_NOISE, count_label_issues, confident_rows,
                                       wilson_interval)
from core.audit.evidence.gather import past_budget


def planted(n: int, k: int, *, noise: float, clear: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels with `noise` of them moved to another class at random, and calibrated probabilities from
    evidence that reads a `clear` share of the listings right with probability 0.97-1 and the others with
    0.3-0.7, as frozen features do on photos like their training set's and unlike it. Returns (labels,
    pred_probs, is_noisy)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    noisy = rng.random(n) < noise
    labels = np.where(noisy, (truth + rng.integers(1, k, n)) % k, truth)
    right = np.where(rng.random(n) < clear, rng.uniform(0.97, 1.0, n), rng.uniform(0.3, 0.7, n))
    read = np.where(rng.random(n) < right, truth, (truth + rng.integers(1, k, n)) % k)
    probs = np.full((n, k), 0.0)
    probs += ((1 - right) / (k - 1))[:, None]
    probs[np.arange(n), read] = right
    return labels, probs, noisy


def test_strong_evidence_counts_within_a_tenth_and_is_not_weak():
    labels, probs, noisy = planted(4000, 9, noise=0.1, clear=0.9)
    count = count_label_issues(labels, probs)
    assert count.low <= noisy.sum() <= count.high
    assert abs(count.estimated - noisy.sum()) <= 0.15 * noisy.sum()
    assert not count.weak, count.reasons


def test_weak_evidence_keeps_the_count_near_the_truth_where_cleanlab_runs_away_and_says_so():
    labels, probs, noisy = planted(900, 9, noise=0.1, clear=0.3, seed=3)
    count = count_label_issues(labels, probs)
    assert count.cleanlab > 1.5 * noisy.sum()  # the members' own mistakes counted as label errors
    assert 0.7 * noisy.sum() <= count.estimated <= 1.3 * noisy.sum()
    assert count.weak and "misreads many listings" in count.reasons[0]
    assert count.cleanlab > count.high


def test_a_weak_count_ranks_on_to_cleanlabs_own_count_past_the_budget_and_a_strong_one_does_not():
    weak = count_label_issues(*planted(900, 9, noise=0.1, clear=0.3, seed=3)[:2])
    assert weak.weak and weak.ranked == weak.cleanlab > weak.estimated
    strong = count_label_issues(*planted(4000, 9, noise=0.1, clear=0.9)[:2])
    assert strong.ranked == strong.estimated
    runaway = replace(weak, cleanlab=800)  # never past MAX_PLAUSIBLE_NOISE of the listings
    assert runaway.ranked == int(MAX_PLAUSIBLE_NOISE * weak.rows)
    scores = np.linspace(0, 1, weak.rows)[::-1]
    past = past_budget(scores, weak)
    assert past.sum() == weak.ranked - weak.estimated
    assert scores[past].max() < np.sort(scores)[weak.ranked] and scores[past].min() >= np.sort(scores)[weak.estimated]


def test_the_confident_set_is_the_surest_rows_and_never_smaller_than_fifty():
    probs = np.linspace(0.2, 0.9, 1000)[:, None] * np.array([[1.0, 0.0]]) + np.array([[0.0, 0.1]])
    top = confident_rows(probs)
    assert len(top) == int(np.ceil(CONFIDENT_SHARE * 1000)) and top[0] == 999
    assert len(confident_rows(probs[:100])) == 50


@pytest.mark.parametrize("successes, trials", [(0, 10), (5, 10), (10, 10), (30, 300)])
def test_wilson_interval_holds_the_share(successes, trials):
    low, high = wilson_interval(successes, trials)
    assert 0.0 <= low <= successes / trials <= high <= 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_noise_in_the_classes_the_evidence_reads_worst_keeps_cleanlabs_count():
    """Surest listings mostly in clean classes: their disagreement would undercount; the test for class-dependent
    noise sends the count back to cleanlab's, with a bootstrap interval."""
    rng = np.random.default_rng(5)
    k, n = 6, 3000
    truth = rng.integers(0, k, n)
    hard = truth >= 3  # classes 3-5: often misfiled among themselves, and hard to read
    noisy = hard & (rng.random(n) < 0.3)
    labels = np.where(noisy, 3 + (truth - 3 + rng.integers(1, 3, n)) % 3, truth)
    right = np.where(hard, rng.uniform(0.5, 0.99, n), rng.uniform(0.95, 1.0, n))
    probs = np.tile(((1 - right) / (k - 1))[:, None], (1, k))
    probs[np.arange(n), truth] = right
    count = count_label_issues(labels, probs)
    assert count.estimated == count.cleanlab
    assert count.low <= count.estimated <= count.high
    assert 0.7 * noisy.sum() <= count.estimated <= 1.3 * noisy.sum()
