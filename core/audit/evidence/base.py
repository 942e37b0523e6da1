"""Members of the mislabel evidence: each one kind of evidence a listing carries, out of fold.

A member has a `name`, says whether it can run on a dataset (`unavailable_reason`) and gives
out-of-fold class probabilities for every row (`out_of_fold`), columns in class order, every
row from a model that never saw that row. A row the member knows nothing about (no title, no
price) gets a uniform row, which says nothing in the combiner. Members are looked up by name
in MEMBERS; a new kind of evidence is one new module that registers its member.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import pandas as pd

from core.audit.evidence.folds import AuditFolds
from core.models.store import EmbeddingStore
from core.progress import ProgressCallback


@dataclass
class EvidenceInput:
    """What every member gets. samples: the audited rows (indexed by sample id; path, content_hash and,
    where the dataset has them, price and title); labels: their current labels as class indices, int
    (N,); classes: sorted class names; root: the dataset folder; options: the mislabel check's options
    (core.audit.evidence.gather.MislabelOptions)."""

    samples: pd.DataFrame
    labels: np.ndarray
    classes: list[str]
    root: Path
    options: Any
    embeddings: Optional[EmbeddingStore] = None
    progress: ProgressCallback = lambda fraction, message: None

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass
class MemberOutput:
    """One member's out-of-fold evidence.

    pred_probs: float (N, K), rows sum to 1; informative: bool (N,), rows the member had evidence for
    (the others are uniform); explanations: per row, a small JSON-able dict a reviewer can check (the
    title's words, the price) or None; details: JSON-able facts about the member (cache key, counts).
    """

    name: str
    pred_probs: np.ndarray
    informative: np.ndarray
    explanations: list[Optional[dict[str, Any]]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, labels: np.ndarray, rows: np.ndarray) -> float:
        """Share of the informative `rows` (bool (N,)) whose most probable class is the given label."""
        judged = rows & self.informative
        return float((self.pred_probs[judged].argmax(1) == labels[judged]).mean()) if judged.any() else float("nan")


class Member(ABC):
    """One kind of evidence. Subclasses set `name` and `label` (what a reviewer reads) and implement
    `unavailable_reason` and `out_of_fold`. An instance lives for one audit: it may keep what it
    prepared (embeddings) between the audit's rounds."""

    name: ClassVar[str]
    label: ClassVar[str]
    #: True for evidence written by whoever chose the label (a title): it may count against a label,
    #: never for it (core.audit.evidence.combine.accuse_only).
    written_with_label: ClassVar[bool] = False

    @abstractmethod
    def unavailable_reason(self, data: EvidenceInput) -> Optional[str]:
        """None when the member can run on `data`, else why not (e.g. "no listing has a title")."""

    @abstractmethod
    def out_of_fold(self, data: EvidenceInput, folds: AuditFolds, *,
                    exclude: Optional[np.ndarray] = None) -> MemberOutput:
        """Out-of-fold probabilities of every row; rows in `exclude` (bool (N,)) are never trained on."""

    def release(self) -> None:
        """Forget what was kept between rounds (after the last one): the audit's memory is then the next
        member's alone. A released member prepares it again when asked."""


MEMBERS: dict[str, Callable[[], Member]] = {}


def register_member(member_class: type[Member]) -> type[Member]:
    """Class decorator: make a member available by its name."""
    MEMBERS[member_class.name] = member_class
    return member_class


def uniform(n: int, k: int) -> np.ndarray:
    """(n, k) rows of 1 / k: a member's answer where it has no evidence."""
    return np.full((n, k), 1.0 / k)



#: Where each member lives; modules are imported when a member is first asked for.
MEMBER_MODULES = {
    "photo": "core.audit.evidence.image",
    "crop": "core.audit.evidence.image",
    "pixels": "core.audit.evidence.image",
    "title": "core.audit.evidence.title",
    "price": "core.audit.evidence.price",
}


def get_member(name: str) -> Member:
    """A new instance of the member called `name`; ValueError listing the valid names otherwise."""
    if name not in MEMBER_MODULES:
        raise ValueError(f"unknown evidence member {name!r}; members are: {', '.join(MEMBER_MODULES)}")
    importlib.import_module(MEMBER_MODULES[name])
    return MEMBERS[name]()
