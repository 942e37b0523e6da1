"""The audit check interface and registry.

A check looks at the audited samples and returns a per-sample table:
`is_<name>_issue` (bool), `<name>_score` (float in [0, 1], lower is worse), and
the evidence columns `suggested_label`, `group`, `reason`, `evidence` (dict),
plus a summary dict. Checks are looked up by name in REGISTRY.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import pandas as pd

from core.models.store import EmbeddingStore
from core.progress import ProgressCallback

EVIDENCE_COLUMNS = ["suggested_label", "group", "reason", "evidence"]


@dataclass
class AuditContext:
    """What every check gets.

    samples: one row per audited sample, indexed by sample id, with the columns
    of db.queries.SAMPLE_COLUMNS; `label` is the sample's CURRENT label (after
    corrections) and `folder_label` the class of its folder. Deleted and missing
    samples are not in it. classes: sorted class names, the order of every
    probability column. root: the dataset folder. params: the audit's options.
    """

    samples: pd.DataFrame
    classes: list[str]
    root: Path
    params: dict[str, Any] = field(default_factory=dict)
    progress: ProgressCallback = lambda fraction, message: None
    embeddings: Optional[EmbeddingStore] = None
    #: results of checks that already ran in this audit, by name (e.g. price uses mislabel's)
    earlier: dict[str, "CheckResult"] = field(default_factory=dict)

    def label_indices(self) -> np.ndarray:
        """Current labels as integer indices into `classes`, shape (N,)."""
        lookup = {name: index for index, name in enumerate(self.classes)}
        return self.samples["label"].map(lookup).to_numpy(dtype=np.int64)


#: A check's ranking past its review budget is queued under its name with this prefix (e.g. "maybe_mislabel").
PAST_BUDGET_PREFIX = "maybe_"
#: The queue's kinds whose items a reviewer judges as possible label errors: the mislabel check's flags and its
#: ranking past the review budget (core.audit.checks.mislabel).
PAST_BUDGET_MISLABEL = PAST_BUDGET_PREFIX + "mislabel"
MISLABEL_KINDS = ("mislabel", PAST_BUDGET_MISLABEL)


@dataclass
class CheckResult:
    """issues: indexed by sample id (every audited sample the check looked at), with columns
    is_<name>_issue, <name>_score and EVIDENCE_COLUMNS. summary: small JSON-able dict."""

    name: str
    issues: pd.DataFrame
    summary: dict[str, Any]

    def flagged(self) -> pd.DataFrame:
        """Only the rows that are issues, worst first."""
        table = self.issues[self.issues[f"is_{self.name}_issue"]]
        return table.sort_values(f"{self.name}_score", kind="stable")

    def past_budget(self) -> pd.DataFrame:
        """The rows ranked past the check's review budget (column `past_budget`; none without it), worst first:
        not issues, but queued as kind PAST_BUDGET_PREFIX + name for a reviewer who wants to go on."""
        if "past_budget" not in self.issues.columns:
            return self.issues.iloc[0:0]
        table = self.issues[self.issues["past_budget"].astype(bool)]
        return table.sort_values(f"{self.name}_score", kind="stable")


class Check(ABC):
    """One kind of issue. Subclasses set `name` and implement `find_issues`."""

    name: ClassVar[str]
    #: a check that needs readable pixels skips unreadable samples
    needs_readable: ClassVar[bool] = True

    @abstractmethod
    def find_issues(self, context: AuditContext) -> CheckResult:
        ...

    def result(self, issues: pd.DataFrame, summary: dict[str, Any]) -> CheckResult:
        """Fill missing evidence columns with empty values and wrap the table."""
        for column in EVIDENCE_COLUMNS:
            if column not in issues.columns:
                issues[column] = [{} for _ in range(len(issues))] if column == "evidence" else None
        return CheckResult(self.name, issues, summary)


REGISTRY: dict[str, type[Check]] = {}


def register(check_class: type[Check]) -> type[Check]:
    """Class decorator: make a check available by its name."""
    REGISTRY[check_class.name] = check_class
    return check_class


def sure_text(score: float) -> str:
    """How sure the audit is that a flag is a real problem (1 - its score in [0, 1]), as shown to people, with
    enough decimals that the distance to 1 keeps two significant digits: 0.066 -> "0.934", 0.00066 ->
    "0.99934", 0.5 -> "0.500", 0 -> "1"."""
    score = float(score)
    if score <= 0.0:
        return "1"
    decimals = max(3, 1 - math.floor(math.log10(score)))
    return f"{1.0 - score:.{decimals}f}"


def get_check(name: str, **options) -> Check:
    """An instance of the check called `name`; ValueError listing the valid names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown check {name!r}; checks are: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](**options)
