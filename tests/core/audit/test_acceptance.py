"""Which decisions accepting an audit's flags makes."""
from __future__ import annotations

import pandas as pd
import pytest

from core.audit.acceptance import PLAN_COLUMNS, plan_acceptance


def flag(flag_id, kind, sample_id, *, label="coat", suggested=None, group=None, deleted=False, last=0):
    return {"flag_id": flag_id, "kind": kind, "suggested_label": suggested, "group_id": group,
            "sample_id": sample_id, "path": f"{label}/{sample_id}.jpg", "current_label": label,
            "deleted": deleted, "last_correction_id": last}


def plan_of(*rows) -> list[tuple]:
    plan = plan_acceptance(pd.DataFrame(rows))
    assert list(plan.columns) == PLAN_COLUMNS
    return [(row.sample_id, row.action, row.new_label) for row in plan.itertuples()]


def test_mislabels_are_relabelled_to_their_suggestion():
    assert plan_of(flag(1, "mislabel", 10, suggested="shirt"), flag(2, "mislabel", 11, suggested="dress")) == [
        (10, "relabel", "shirt"), (11, "relabel", "dress")]


def test_broken_files_are_deleted_and_price_and_quality_flags_are_left_to_people():
    assert plan_of(flag(1, "broken", 10), flag(2, "price", 11), flag(3, "quality", 12)) == [(10, "delete", None)]


def test_each_duplicate_group_keeps_one_member_not_suspected_of_a_mislabel():
    rows = [flag(1, "duplicate", 10, group=1), flag(2, "duplicate", 11, group=1), flag(3, "duplicate", 12, group=1),
            flag(4, "mislabel", 10, suggested="shirt"),
            flag(5, "duplicate", 20, group=2), flag(6, "duplicate", 21, group=2)]
    assert plan_of(*rows) == [(10, "delete", None), (12, "delete", None), (21, "delete", None)]


def test_a_group_of_suspects_keeps_its_lowest_id_and_relabels_it():
    rows = [flag(1, "duplicate", 10, group=1), flag(2, "duplicate", 11, group=1),
            flag(3, "mislabel", 10, suggested="shirt"), flag(4, "mislabel", 11, suggested="shirt")]
    assert plan_of(*rows) == [(11, "delete", None), (10, "relabel", "shirt")]


def test_nothing_for_deleted_samples_flags_without_suggestion_or_labels_already_right():
    rows = [flag(1, "mislabel", 10, suggested="shirt", deleted=True), flag(2, "mislabel", 11),
            flag(3, "mislabel", 12, suggested="coat"), flag(4, "broken", 13, deleted=True)]
    assert plan_of(*rows) == []


def test_the_plan_carries_each_samples_latest_correction_for_conflict_checks():
    plan = plan_acceptance(pd.DataFrame([flag(1, "mislabel", 10, suggested="shirt", last=7)]))
    assert plan.loc[0, "expected_last_id"] == 7 and plan.loc[0, "flag_id"] == 1


def test_missing_columns_are_refused():
    with pytest.raises(ValueError, match="lack the columns"):
        plan_acceptance(pd.DataFrame([{"flag_id": 1, "kind": "broken"}]))
