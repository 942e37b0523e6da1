"""The title member on tiny datasets, with and without titles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.audit.evidence.gather import MislabelOptions
from core.audit.evidence.base import EvidenceInput, get_member
from core.audit.evidence.folds import make_folds

WORDS = {0: ["laptop", "notebook", "ultrabook"], 1: ["sofa", "armchair", "couch"], 2: ["bike", "bicycle", "scooter"]}
FILLER = ["great", "used", "condition", "cheap", "like new", "must go", "black", "grey"]


def titled_input(titles: list[str], labels: np.ndarray) -> EvidenceInput:
    samples = pd.DataFrame({"path": [f"{i}.jpg" for i in range(len(labels))], "title": titles})
    return EvidenceInput(samples, labels, ["bikes", "laptops", "sofas"], Path("."), MislabelOptions())


def make_titles(labels: np.ndarray, rng) -> list[str]:
    return [f"{rng.choice(FILLER)} {rng.choice(WORDS[int(k)])} {rng.choice(FILLER)}" for k in labels]


def test_titles_that_name_the_item_find_the_mislabelled_listing():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    titles = make_titles(labels, rng)
    titles[5] = "Barely used couch, grey"  # filed under class 0 but a sofa
    data = titled_input(titles, labels)
    member = get_member("title")
    assert member.unavailable_reason(data) is None
    output = member.out_of_fold(data, make_folds(labels, np.arange(60), n_classes=3, folds=5, seed=0))
    assert output.informative.all()
    assert output.pred_probs[5].argmax() == 1
    assert output.explanations[5]["words"][0] == "couch"
    assert output.accuracy(labels, np.ones(60, bool)) > 0.9


def test_listings_without_a_title_get_no_vote():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 20)
    titles = make_titles(labels, rng)
    for row in range(0, 60, 3):
        titles[row] = "" if row % 2 else None
    output = get_member("title").out_of_fold(titled_input(titles, labels),
                                             make_folds(labels, np.arange(60), n_classes=3, folds=4, seed=0))
    untitled = np.arange(60) % 3 == 0
    assert not output.informative[untitled].any() and output.informative[~untitled].all()
    assert np.allclose(output.pred_probs[untitled], 1 / 3)
    assert all(output.explanations[row] is None for row in np.flatnonzero(untitled))


def test_a_dataset_without_titles_has_no_title_member():
    labels = np.repeat([0, 1], 10)
    samples = pd.DataFrame({"path": [f"{i}.jpg" for i in range(20)]})
    data = EvidenceInput(samples, labels, ["a", "b"], Path("."), MislabelOptions())
    assert "title" in get_member("title").unavailable_reason(data)
    assert get_member("title").unavailable_reason(titled_input([""] * 20, labels)) is not None


def test_titles_without_words_give_no_vote_rather_than_an_error():
    labels = np.repeat([0, 1], 10)
    data = titled_input([str(i) for i in range(20)], labels)  # digits only: no word, rare characters
    output = get_member("title").out_of_fold(data, make_folds(labels, np.arange(20), n_classes=2, folds=2, seed=0))
    assert output.pred_probs.shape == (20, 3) and not output.informative.any()
