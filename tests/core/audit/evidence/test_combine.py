"""The combiner: weighs members by how much they help on this dataset, out of fold."""
from __future__ import annotations

import numpy as np

from core.audit.evidence.base import MemberOutput
from core.audit.evidence.combine import combine, log_evidence
from core.audit.evidence.folds import make_folds


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def informative_member(labels, k, strength, rng, name):
    logits = rng.normal(0, 1, (len(labels), k))
    logits[np.arange(len(labels)), labels] += strength
    return MemberOutput(name, softmax(logits), np.ones(len(labels), bool))


def test_a_useless_member_gets_near_zero_weight_and_does_not_hurt():
    rng = np.random.default_rng(0)
    k, labels = 4, np.repeat(np.arange(4), 100)
    useful = informative_member(labels, k, 2.5, rng, "useful")
    noise = MemberOutput("noise", softmax(rng.normal(0, 3, (len(labels), k))), np.ones(len(labels), bool))
    folds = make_folds(labels, np.arange(len(labels)), n_classes=k, folds=5, seed=0)
    combined = combine([useful, noise], labels, folds)
    assert combined.weights["noise"] < 0.05
    assert combined.weights["useful"] > 0.5
    alone = combine([useful], labels, folds)
    accuracy = (combined.pred_probs.argmax(1) == labels).mean()
    assert accuracy >= (alone.pred_probs.argmax(1) == labels).mean() - 0.01
    assert np.allclose(combined.pred_probs.sum(axis=1), 1.0)


def test_two_independent_members_beat_either_alone():
    rng = np.random.default_rng(1)
    k, labels = 5, np.repeat(np.arange(5), 80)
    first = informative_member(labels, k, 1.2, rng, "first")
    second = informative_member(labels, k, 1.2, rng, "second")
    folds = make_folds(labels, np.arange(len(labels)), n_classes=k, folds=5, seed=0)
    both = combine([first, second], labels, folds).pred_probs
    for member in (first, second):
        assert (both.argmax(1) == labels).mean() > (member.pred_probs.argmax(1) == labels).mean() + 0.03


def test_rows_without_evidence_are_left_to_the_other_members():
    rng = np.random.default_rng(2)
    k, labels = 3, np.repeat(np.arange(3), 60)
    photo = informative_member(labels, k, 1.5, rng, "photo")
    title = informative_member(labels, k, 4.0, rng, "title")
    missing = np.arange(len(labels)) % 2 == 0
    title.pred_probs[missing] = 1.0 / k
    title.informative[missing] = False
    folds = make_folds(labels, np.arange(len(labels)), n_classes=k, folds=3, seed=0)
    assert np.allclose(log_evidence([photo, title])[missing, 1], 0.0)  # a uniform row adds nothing
    combined = combine([photo, title], labels, folds).pred_probs
    only_photo = combine([photo], labels, folds).pred_probs
    def accuracy(probs, rows):
        return (probs[rows].argmax(1) == labels[rows]).mean()
    assert abs(accuracy(combined, missing) - accuracy(only_photo, missing)) < 0.05
    assert accuracy(combined, ~missing) > accuracy(only_photo, ~missing) + 0.1


def test_combined_probabilities_are_out_of_fold():
    """A member that is right only on the rows of one fold cannot earn weight from them for that fold."""
    rng = np.random.default_rng(3)
    k, labels = 3, np.repeat(np.arange(3), 50)
    folds = make_folds(labels, np.arange(len(labels)), n_classes=k, folds=5, seed=0)
    base = informative_member(labels, k, 1.0, rng, "base")
    leaky = np.full((len(labels), k), 1.0 / k)
    inside = folds.fold == 0
    leaky[inside] = np.eye(k)[labels[inside]] * 0.98 + 0.01
    combined = combine([base, MemberOutput("leaky", leaky, np.ones(len(labels), bool))], labels, folds)
    assert combined.weights["leaky"] > 1.0  # fitted on all rows, the member looks perfect on fold 0 ...
    # ... but the fit that combined fold 0 never saw fold 0's rows, where alone it is informative
    assert combined.fold_weights[0][1] == 0.0
    assert (combined.pred_probs[inside].argmax(1) == labels[inside]).mean() < 0.9


def test_a_title_written_with_a_wrong_label_cannot_vouch_for_it():
    """Sellers who misfile a listing title it in the wrong class's words: such a title may accuse a label,
    never acquit it."""
    rng = np.random.default_rng(4)
    k, true = 3, np.repeat(np.arange(3), 100)
    labels = true.copy()
    wrong = rng.choice(len(labels), size=30, replace=False)
    labels[wrong] = (true[wrong] + 1) % k
    photo = informative_member(true, k, 3.0, rng, "photo")  # sees the item
    title = informative_member(labels, k, 4.0, rng, "title")  # written with the (sometimes wrong) label
    folds = make_folds(labels, np.arange(len(labels)), n_classes=k, folds=5, seed=0)
    trusting = combine([photo, title], labels, folds).pred_probs
    guarded = combine([photo, title], labels, folds, written_with_label=["title"])
    rows = np.arange(len(labels))
    assert np.median(trusting[wrong, labels[wrong]]) > 0.5  # the title talks the wrong labels up
    assert np.median(guarded.pred_probs[wrong, labels[wrong]]) < 0.2
    assert np.all(guarded.pred_probs[rows, labels] <= trusting[rows, labels] + 1e-9)
    assert guarded.independent_pred_probs is not None and guarded.count_probs is guarded.independent_pred_probs


def test_a_title_that_copies_the_labels_neither_vouches_nor_changes_the_count():
    """Sellers who write titles from the category they picked ("coat for sale"): the title agrees with every
    label, wrong ones included. It earns a large weight, yet the ranking and the count are the photo's."""
    rng = np.random.default_rng(6)
    k, true = 4, np.repeat(np.arange(4), 80)
    labels = true.copy()
    wrong = rng.choice(len(labels), size=32, replace=False)
    labels[wrong] = (true[wrong] + 1) % k
    photo = informative_member(true, k, 2.0, rng, "photo")
    copy = MemberOutput("title", np.eye(k)[labels] * 0.96 + 0.01, np.ones(len(labels), bool))
    folds = make_folds(labels, np.arange(len(labels)), n_classes=k, folds=5, seed=0)
    alone = combine([photo], labels, folds)
    guarded = combine([photo, copy], labels, folds, written_with_label=["title"])
    assert guarded.weights["title"] > guarded.weights["photo"]  # it explains the given labels best ...
    assert np.allclose(guarded.pred_probs, alone.pred_probs)  # ... and still changes no row's evidence
    assert np.allclose(guarded.count_probs, alone.pred_probs)
