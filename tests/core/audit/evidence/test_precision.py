"""The queue's precision from the reviewer's decisions, anchored by the audit's count, on a planted queue."""
import numpy as np
import pytest

from core.audit.evidence.precision import estimate_queue_precision


def planted_queue(seed: int = 0, separation: float = 3.0):
    """2,000 listings, 200 truly mislabelled; scores as an audit makes them: far too sure in the tail (the
    flagged labels get 0.001-0.05), ordered about as well as on our datasets (AUROC about 0.98 at
    separation 3; 4 is a purer queue, as on the photo demo)."""
    rng = np.random.default_rng(seed)
    wrong = np.zeros(2000, bool)
    wrong[:200] = True
    evidence = rng.normal(0, 1.0, 2000) + separation * wrong
    scores = 1 / (1 + np.exp(evidence * 2.2))  # self-confidence: low for the likely errors
    order = np.argsort(scores, kind="stable")
    return scores, wrong, order


@pytest.mark.parametrize("separation", [3.0, 4.0])
def test_after_fifty_decisions_the_precision_is_within_a_tenth_and_its_interval_holds_the_truth(separation):
    """The first 50 decisions all confirm their flags in both queues, whose true precision differs."""
    scores, wrong, order = planted_queue(separation=separation)
    flags = order[:200]
    truth = wrong[flags].mean()
    decided, still_open = flags[:50], flags[50:]
    estimate = estimate_queue_precision(scores, 200, scores[decided], wrong[decided], scores[still_open],
                                        errors_interval=(170, 230))
    naive_from_scores = (1 - scores[flags]).mean()
    assert naive_from_scores > truth + 0.03  # the audit's own probabilities overstate the queue
    assert abs(estimate.precision - truth) <= 0.1
    assert estimate.low <= truth <= estimate.high
    assert estimate.decided == 50 and estimate.open == 150 and estimate.confirmed == wrong[decided].sum()
    assert "decisions confirmed the flag" in estimate.sentence()


def test_decisions_that_refute_the_flags_lower_the_estimate():
    scores, wrong, order = planted_queue(1)
    flags = order[:200]
    decided, still_open = flags[:50], flags[50:]
    confirming = estimate_queue_precision(scores, 200, scores[decided], np.ones(50, bool), scores[still_open])
    refuting = estimate_queue_precision(scores, 200, scores[decided], np.arange(50) % 2 == 0, scores[still_open])
    assert refuting.expected_open < confirming.expected_open
    assert refuting.recent_confirmed == 20 and refuting.recent == 40  # the last 40 of 50


def test_no_decision_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        estimate_queue_precision(np.array([0.1, 0.2]), 1, np.array([]), np.array([], bool), np.array([0.1]))
