"""Run a list of audit checks on one AuditContext, in a fixed order, and combine what they found into flags.

Order matters: a later check reads earlier results from `context.earlier` (the
price check uses the mislabel check's suggestions), and after all checks ran the
mislabel flags get the price and duplicate evidence about the same samples.
Pure: no database; jobs.audit loads the samples and stores the flags.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from core.audit.checks.base import PAST_BUDGET_PREFIX, REGISTRY, AuditContext, CheckResult, get_check
from core.progress import within

log = logging.getLogger(__name__)

#: Where each check lives. Modules are imported only when their check runs (the mislabel check loads torch).
CHECK_MODULES = {
    "broken": "core.audit.checks.broken",
    "quality": "core.audit.checks.quality",
    "duplicate": "core.audit.checks.duplicates",
    "mislabel": "core.audit.checks.mislabel",
    "price": "core.audit.checks.price",
}
#: The order checks run in: price after mislabel, whose suggestions explain some odd prices.
CHECK_ORDER = tuple(CHECK_MODULES)
#: Relative share of the progress bar per check (default 1), from a cold audit of 2,800 listings: mislabel
#: (embeds and cross-validates) 62 s, price 4.6 s, duplicate 0.4 s, broken and quality under 0.2 s.
PROGRESS_WEIGHTS = {"mislabel": 20.0, "price": 1.5, "duplicate": 0.3, "broken": 0.2, "quality": 0.2}
FLAG_COLUMNS = ["sample_id", "kind", "score", "given_label", "suggested_label", "group", "reason", "evidence"]


def available_checks() -> list[str]:
    """Names of the checks that can run here, in run order (without importing them)."""
    return [name for name, module in CHECK_MODULES.items() if importlib.util.find_spec(module) is not None]


def resolve_checks(names: Optional[Iterable[str]] = None) -> list[str]:
    """The checks to run, in run order, duplicates dropped; None or empty means all available.

    Raises ValueError naming an unknown check and listing the valid ones.
    """
    valid = available_checks()
    wanted = [name.strip() for name in (names or []) if name.strip()]
    unknown = [name for name in wanted if name not in valid]
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}; checks are: {', '.join(valid)}")
    chosen = set(wanted or valid)
    return [name for name in valid if name in chosen]


def load_check(name: str, **options):
    """An instance of check `name`, importing its module first."""
    if name not in REGISTRY and name in CHECK_MODULES:
        importlib.import_module(CHECK_MODULES[name])
    return get_check(name, **options)


@dataclass
class AuditRun:
    """What one audit found, by check name: each finished check's result, each failed check's error
    (one line), and every check's wall time in seconds."""

    results: dict[str, CheckResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Per check, in run order: flags, seconds and the check's own summary, or for a failed check
        its `error` and no flags (JSON-able)."""
        return {
            name: ({"flags": 0, "seconds": round(self.seconds[name], 3), "error": self.errors[name]}
                   if name in self.errors else
                   {"flags": int(self.results[name].issues[f"is_{name}_issue"].sum()),
                    "seconds": round(self.seconds[name], 3), **self.results[name].summary})
            for name in self.seconds
        }


def run_audit(context: AuditContext, check_names: Iterable[str], *,
              options: Optional[dict[str, dict[str, Any]]] = None) -> AuditRun:
    """Run the named checks (in CHECK_ORDER) on `context`; options[name] are keyword options of that check.

    A check that needs readable pixels sees only readable samples. Progress goes to
    context.progress over the whole audit. Results are also left in context.earlier.
    A check that raises does not end the audit: its one-line error goes to run.errors (the
    traceback to the log) and the other checks run as if it had not been asked for. Exceptions
    that are not `Exception`s (a cancelled job, Ctrl-C) end the audit.
    """
    names = resolve_checks(check_names)
    options = options or {}
    weights = np.array([PROGRESS_WEIGHTS.get(name, 1.0) for name in names])
    bounds = np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
    run = AuditRun()
    for name, start, end in zip(names, bounds[:-1], bounds[1:]):
        check = load_check(name, **options.get(name, {}))
        samples = context.samples
        if check.needs_readable:
            samples = samples[samples["readable"].astype(bool)]
        context.progress(float(start), f"{name}: starting")
        check_context = dataclasses.replace(context, samples=samples,
                                            progress=within(context.progress, float(start), float(end), f"{name}: "))
        began = time.perf_counter()
        try:
            result = check.find_issues(check_context)
        except Exception as error:  # noqa: BLE001 - one failed check must not throw away the others' work
            log.exception("the %s check failed", name)
            run.errors[name] = one_line_error(error)
        else:
            run.results[name] = context.earlier[name] = result
        run.seconds[name] = time.perf_counter() - began
    add_cross_evidence(run.results)
    context.progress(1.0, "audit finished")
    return run


def one_line_error(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, at most `limit` characters."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"



def add_cross_evidence(results: dict[str, CheckResult]) -> None:
    """Give each mislabel flag what the price and duplicate checks said about the same sample.

    evidence["price_check"]: the price, its class median and z, the best-fitting class, and
    whether the price is an outlier for the given label that fits the suggested one;
    evidence["duplicate_group"]: the
    group's id, labels and majority label when the sample is in a label-conflict group.
    """
    mislabel = results.get("mislabel")
    if mislabel is None:
        return
    flagged = mislabel.issues.index[mislabel.issues["is_mislabel_issue"].to_numpy(dtype=bool)].append(
        mislabel.past_budget().index)
    price = results.get("price")
    duplicate = results.get("duplicate")
    for sample_id in flagged:
        evidence = dict(mislabel.issues.at[sample_id, "evidence"] or {})
        suggested = mislabel.issues.at[sample_id, "suggested_label"]
        if price is not None and sample_id in price.issues.index:
            price_evidence = price.issues.at[sample_id, "evidence"]
            if price_evidence:
                evidence["price_check"] = {
                    key: price_evidence.get(key) for key in ("price", "class_median", "z", "best_class", "best_class_z")
                }
                # an outlier for the given label that fits the suggested one
                evidence["price_check"]["supports_suggestion"] = price_evidence.get("explained_by_mislabel") == suggested
        if duplicate is not None and sample_id in duplicate.issues.index:
            group = duplicate.issues.at[sample_id, "evidence"]
            if group and group.get("label_conflict"):
                evidence["duplicate_group"] = {key: group[key] for key in ("group", "labels", "majority_label")}
        mislabel.issues.at[sample_id, "evidence"] = evidence


def flags_table(run: AuditRun, samples: pd.DataFrame) -> pd.DataFrame:
    """All flags of an audit, one row per (sample, kind), worst (lowest score) first; columns FLAG_COLUMNS.

    samples: the audit's sample table (index = sample id, `label` = the label audited).
    """
    parts = []
    for name, result in run.results.items():
        parts += [_flag_rows(name, result, result.flagged(), samples),
                  _flag_rows(PAST_BUDGET_PREFIX + name, result, result.past_budget(), samples)]
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame(columns=FLAG_COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["score", "kind", "sample_id"], kind="stable").reset_index(drop=True)


def _flag_rows(kind: str, result: CheckResult, rows: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """FLAG_COLUMNS of `rows` (part of `result`'s table) as flags of `kind`."""
    return pd.DataFrame({
        "sample_id": rows.index.to_numpy(dtype=np.int64),
        "kind": kind,
        "score": np.clip(rows[f"{result.name}_score"].to_numpy(dtype=float), 0.0, 1.0),
        "given_label": samples.loc[rows.index, "label"].to_numpy(),
        "suggested_label": rows["suggested_label"].to_numpy(),
        "group": rows["group"].to_numpy(),
        "reason": rows["reason"].fillna("").to_numpy(),
        "evidence": rows["evidence"].to_numpy(),
    })
