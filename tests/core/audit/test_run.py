"""Running checks in order on one context, combining their results into flags, cross evidence."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.audit.run import (CHECK_ORDER, AuditRun, add_cross_evidence, available_checks, flags_table, resolve_checks,
                            run_audit)
from core.audit.checks.base import AuditContext, CheckResult
from db.queries import dataset_classes
from jobs.audit import audit_samples
from jobs.scan import scan_dataset
from tests.audit_data import BROKEN_PATH, TYPO_PATH, build_audit_dataset

FRAMEWORK_CHECKS = ["broken", "quality", "duplicate", "price"]


@pytest.fixture
def context(factory, tmp_path) -> AuditContext:
    dataset_id = scan_dataset(factory, build_audit_dataset(tmp_path), workers=1)["dataset_id"]
    with factory() as session:
        return AuditContext(samples=audit_samples(session, dataset_id), classes=dataset_classes(session, dataset_id),
                            root=tmp_path)


def test_checks_are_resolved_in_run_order_and_unknown_ones_are_refused():
    assert resolve_checks(["price", "broken", "price"]) == ["broken", "price"]
    assert resolve_checks(None) == available_checks() == [c for c in CHECK_ORDER if c in available_checks()]
    assert set(FRAMEWORK_CHECKS) <= set(available_checks())
    with pytest.raises(ValueError, match="unknown check 'colour'; checks are: broken, quality"):
        resolve_checks(["colour"])


def test_an_audit_runs_each_check_on_the_samples_it_can_use(context):
    reports = []
    context.progress = lambda fraction, message: reports.append((fraction, message))
    run = run_audit(context, FRAMEWORK_CHECKS)
    assert list(run.results) == FRAMEWORK_CHECKS and set(run.seconds) == set(FRAMEWORK_CHECKS)
    broken_path = context.samples.index[context.samples["path"] == BROKEN_PATH][0]
    assert broken_path in run.results["broken"].issues.index
    assert broken_path not in run.results["duplicate"].issues.index  # needs readable pixels
    assert broken_path in run.results["price"].issues.index  # a price needs no pixels
    assert context.earlier.keys() == run.results.keys()
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(message.startswith("duplicate: ") for _, message in reports)
    summary = run.summary()
    assert summary["broken"]["flags"] == 1 and summary["duplicate"]["groups"] == 1 and summary["price"]["flags"] == 1


def test_flags_table_has_one_row_per_flag_worst_first(context):
    run = run_audit(context, FRAMEWORK_CHECKS)
    flags = flags_table(run, context.samples)
    assert list(flags.columns) == ["sample_id", "kind", "score", "given_label", "suggested_label", "group", "reason",
                                   "evidence"]
    assert flags["score"].is_monotonic_increasing
    assert sorted(flags["kind"]) == ["broken", "duplicate", "duplicate", "price"]
    paths = context.samples.loc[flags["sample_id"], "path"].tolist()
    assert paths[0] == BROKEN_PATH and flags["reason"].str.len().gt(0).all()
    price = flags[flags["kind"] == "price"].iloc[0]
    assert price["given_label"] == "cheap" and context.samples.at[price["sample_id"], "path"] == TYPO_PATH
    duplicates = flags[flags["kind"] == "duplicate"]
    assert duplicates["group"].nunique() == 1 and set(duplicates["given_label"]) == {"cheap", "dear"}


def test_mislabel_flags_get_price_and_duplicate_evidence():
    index = pd.Index([1, 2, 3], name="id")
    mislabel = CheckResult("mislabel", pd.DataFrame({
        "is_mislabel_issue": [True, True, False], "mislabel_score": [0.1, 0.2, 0.9],
        "suggested_label": ["coat", "coat", None], "group": None, "reason": "",
        "evidence": [{"top3": []}, {}, {}]}, index=index), {})
    price = CheckResult("price", pd.DataFrame({
        "is_price_issue": [False, True, False], "price_score": [0.2, 0.1, 1.0], "suggested_label": None,
        "group": None, "reason": None,
        "evidence": [{"price": 110.0, "class_median": 15.0, "z": 5.1, "best_class": "coat", "best_class_z": 0.3,
                      "explained_by_mislabel": "coat"},
                     {"price": 1500.0, "class_median": 15.0, "z": 11.0, "best_class": "coat", "best_class_z": 7.0},
                     {}]}, index=index), {})
    duplicate = CheckResult("duplicate", pd.DataFrame({
        "is_duplicate_issue": [False, True, False], "duplicate_score": [1.0, 0.2, 1.0], "suggested_label": None,
        "group": [None, 4, None], "reason": None,
        "evidence": [{}, {"group": 4, "labels": {"coat": 1, "t-shirt": 1}, "majority_label": None,
                          "label_conflict": True}, {}]}, index=index), {})
    add_cross_evidence({"mislabel": mislabel, "price": price, "duplicate": duplicate})
    first, second, third = mislabel.issues["evidence"]
    assert first["top3"] == [] and first["price_check"]["supports_suggestion"] is True
    assert first["price_check"]["best_class"] == "coat" and "duplicate_group" not in first
    assert second["price_check"]["supports_suggestion"] is False
    assert second["duplicate_group"] == {"group": 4, "labels": {"coat": 1, "t-shirt": 1}, "majority_label": None}
    assert third == {}


def test_a_ranking_past_the_budget_is_queued_as_its_own_kind_after_the_flags():
    index = pd.Index([1, 2, 3, 4], name="id")
    mislabel = CheckResult("mislabel", pd.DataFrame({
        "is_mislabel_issue": [True, False, False, False], "past_budget": [False, True, True, False],
        "mislabel_score": [0.01, 0.3, 0.2, 0.9], "suggested_label": ["coat", "bag", "coat", None], "group": None,
        "reason": "r", "evidence": [{}, {}, {}, {}]}, index=index), {})
    samples = pd.DataFrame({"label": ["t-shirt", "coat", "t-shirt", "coat"]}, index=index)
    flags = flags_table(AuditRun(results={"mislabel": mislabel}), samples)
    assert flags[["sample_id", "kind", "suggested_label"]].values.tolist() == [
        [1, "mislabel", "coat"], [3, "maybe_mislabel", "coat"], [2, "maybe_mislabel", "bag"]]
    assert mislabel.flagged().index.tolist() == [1]  # not flags: the check's count is unchanged


def test_an_audit_of_nothing_but_unreadable_files_still_finishes(tmp_path):
    samples = pd.DataFrame({"path": ["a/x.jpg"], "label": ["a"], "readable": [False], "error": ["empty file"],
                            "file_size": [0], "price": [float("nan")]}, index=pd.Index([7], name="id"))
    run = run_audit(AuditContext(samples=samples, classes=["a"], root=Path(tmp_path)), ["broken", "price"])
    assert flags_table(run, samples)[["sample_id", "kind"]].values.tolist() == [[7, "broken"]]


def test_a_check_that_fails_does_not_sink_the_audit(context):
    wrong_shape = np.zeros((2, 2))  # as if a run's probabilities belonged to another dataset
    run = run_audit(context, ["broken", "mislabel", "price"], options={"mislabel": {"source": "run",
                                                                                   "pred_probs": wrong_shape}})
    assert list(run.results) == ["broken", "price"] and list(run.errors) == ["mislabel"]
    assert run.errors["mislabel"].startswith("ValueError: pred_probs must have shape")
    assert "\n" not in run.errors["mislabel"]
    summary = run.summary()
    assert list(summary) == ["broken", "mislabel", "price"]
    assert summary["mislabel"]["flags"] == 0 and summary["mislabel"]["error"] == run.errors["mislabel"]
    assert summary["price"]["flags"] == 1 and not summary["price"]["used_mislabel_result"]
    assert sorted(flags_table(run, context.samples)["kind"]) == ["broken", "price"]
