"""The "title" member: an out-of-fold text classifier on listing titles.

TF-IDF of words (1-2 grams) and of character 2-5 grams within words (catches "jacket" in
"rainjacket", typos and plurals), a multinomial logistic regression on both. Each fold fits
its own vocabulary on its training titles only. A listing without a title gets a uniform row.
The explanation of a row names the title's words that pushed most towards its top class.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from core.audit.evidence.base import EvidenceInput, Member, MemberOutput, register_member, uniform
from core.audit.evidence.folds import AuditFolds
from core.audit.oof import predict_all_classes

#: The member runs when at least this many audited listings have a title, in at least two classes.
MIN_TITLED_ROWS = 10
#: Inverse regularisation of the logistic regression on the TF-IDF features (checked on three datasets
#: in docs/mislabel.md; the combiner rescales the member's confidence anyway).
TITLE_C = 1.0
#: Words named in a row's explanation.
EXPLAINED_WORDS = 3
WORD_PATTERN = r"(?u)\b[^\W\d_][\w'-]*\b"


def titles_of(samples: pd.DataFrame) -> np.ndarray:
    """The stripped title of each row, object (N,); "" for a missing title."""
    if "title" not in samples:
        return np.full(len(samples), "", dtype=object)
    return samples["title"].fillna("").astype(str).str.strip().to_numpy(dtype=object)


class TitleFeatures:
    """Word and character TF-IDF, fitted on one fold's training titles."""

    def __init__(self) -> None:
        self.words = TfidfVectorizer(analyzer="word", token_pattern=WORD_PATTERN, ngram_range=(1, 2),
                                     sublinear_tf=True, lowercase=True)
        self.characters = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                          lowercase=True, min_df=2)

    def fit_transform(self, titles: np.ndarray) -> sparse.csr_matrix:
        return sparse.hstack([self.words.fit_transform(titles), self.characters.fit_transform(titles)]).tocsr()

    def transform(self, titles: np.ndarray) -> sparse.csr_matrix:
        return sparse.hstack([self.words.transform(titles), self.characters.transform(titles)]).tocsr()


def strongest_words(features: sparse.csr_matrix, coefficients: np.ndarray, vocabulary: np.ndarray,
                    classes_of_rows: np.ndarray) -> list[list[str]]:
    """Per row, up to EXPLAINED_WORDS word features with the largest positive contribution (TF-IDF value
    times coefficient) towards that row's class. features: (n, V+C) with the V word columns first;
    coefficients: (K_seen, V+C); classes_of_rows: int (n,) row index into coefficients."""
    words = features[:, :len(vocabulary)].tocsr()
    named = []
    for row in range(words.shape[0]):
        start, end = words.indptr[row], words.indptr[row + 1]
        columns, values = words.indices[start:end], words.data[start:end]
        push = values * coefficients[classes_of_rows[row], columns]
        order = np.argsort(-push, kind="stable")
        named.append([str(vocabulary[columns[i]]) for i in order[:EXPLAINED_WORDS] if push[i] > 0])
    return named


@register_member
class TitleMember(Member):
    name = "title"
    label = "title"
    written_with_label = True

    def unavailable_reason(self, data: EvidenceInput) -> Optional[str]:
        titled = titles_of(data.samples) != ""
        if titled.sum() < MIN_TITLED_ROWS or len(np.unique(data.labels[titled])) < 2:
            return f"fewer than {MIN_TITLED_ROWS} listings with a title in two classes"
        return None

    def out_of_fold(self, data: EvidenceInput, folds: AuditFolds, *,
                    exclude: Optional[np.ndarray] = None) -> MemberOutput:
        titles = titles_of(data.samples)
        titled = titles != ""
        n, k = len(titles), data.n_classes
        pred_probs = uniform(n, k)
        informative = np.zeros(n, bool)
        explanations: list[Optional[dict]] = [None] * n
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            for train, held_out in folds.splits(exclude):
                train, held_out = train[titled[train]], held_out[titled[held_out]]
                if len(held_out) == 0 or len(np.unique(data.labels[train])) < 2:
                    continue
                vectorizer = TitleFeatures()
                try:
                    train_features = vectorizer.fit_transform(titles[train])
                except ValueError:  # no word or character n-gram in these titles ("123", "!!")
                    continue
                model = LogisticRegression(C=TITLE_C, solver="newton-cg", max_iter=1000)
                model.fit(train_features, data.labels[train])
                held_features = vectorizer.transform(titles[held_out])
                probs = predict_all_classes(model, held_features, k)
                pred_probs[held_out] = probs
                informative[held_out] = True
                top_seen = np.searchsorted(model.classes_, probs.argmax(1)).clip(0, len(model.classes_) - 1)
                words = strongest_words(held_features, model.coef_ if len(model.classes_) > 2 else
                                        np.vstack([-model.coef_[0], model.coef_[0]]),
                                        vectorizer.words.get_feature_names_out(), top_seen)
                for row, title, named in zip(held_out, titles[held_out], words):
                    explanations[row] = {"title": str(title), "words": named}
        return MemberOutput(self.name, pred_probs, informative, explanations,
                            details={"titled": int(titled.sum())})
