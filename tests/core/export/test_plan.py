"""Tests of core.export.plan: where each listing goes, which class names and paths are refused.
"""
from __future__ import annotations

import pandas as pd
import pytest

from core.export.plan import (ExportError, UnsafeClassName, check_class_names, format_summary, plan_export,
                              unsafe_name_reason)


def _frame(rows: list[dict]) -> pd.DataFrame:
    defaults = {"deleted": False, "readable": True, "missing": False, "last_action": "", "reviewer": "",
                "price_fixed": False}
    return pd.DataFrame([{**defaults, **row} for row in rows])


@pytest.fixture
def samples() -> pd.DataFrame:
    return _frame([
        {"path": "bag/a.png", "label": "bag", "current_label": "shoe", "last_action": "relabel", "reviewer": "ann"},
        {"path": "bag/b.png", "label": "bag", "current_label": "bag", "deleted": True, "last_action": "delete",
         "reviewer": "bob"},
        {"path": "bag/sub/c.png", "label": "bag", "current_label": "phone", "last_action": "relabel", "reviewer": "ann"},
        {"path": "shoe/a.png", "label": "shoe", "current_label": "shoe"},
        {"path": "shoe/d.png", "label": "shoe", "current_label": "shoe", "last_action": "keep", "reviewer": "ann"},
        {"path": "shoe/broken.jpg", "label": "shoe", "current_label": "shoe", "readable": False},
        {"path": "phone/e.png", "label": "phone", "current_label": "phone"},
        {"path": "phone/gone.png", "label": "phone", "current_label": "phone", "missing": True},
    ])


def test_plan_sends_relabels_to_their_new_class_and_leaves_out_deleted_broken_missing(samples):
    plan = plan_export(samples)
    manifest = plan.manifest.set_index("path")
    assert manifest.loc["bag/sub/c.png", "output_path"] == "phone/sub/c.png"
    # shoe/a.png already exists in the target class: the moved bag/a.png gets a name that says where it came from
    assert manifest.loc["shoe/a.png", "output_path"] == "shoe/a.png"
    assert manifest.loc["bag/a.png", "output_path"] == "shoe/a__from_bag.png"
    assert {p: manifest.loc[p, "decision"] for p in ("bag/b.png", "shoe/broken.jpg", "phone/gone.png")} == {
        "bag/b.png": "deleted", "shoe/broken.jpg": "broken", "phone/gone.png": "missing"}
    assert (manifest.loc[["bag/b.png", "shoe/broken.jpg", "phone/gone.png"], "output_path"] == "").all()
    assert manifest.loc["shoe/d.png", "decision"] == "kept" and manifest.loc["phone/e.png", "decision"] == "unchanged"
    assert plan.summary["decisions"] == {"unchanged": 2, "kept": 1, "price_fixed": 0, "relabelled": 2, "deleted": 1,
                                         "broken": 1, "missing": 1, "vanished": 0, "changed": 0, "refused": 0}
    assert plan.summary["relabelled"] == [{"from": "bag", "to": "phone", "count": 1},
                                          {"from": "bag", "to": "shoe", "count": 1}]
    assert plan.summary["classes_after"] == {"phone": 2, "shoe": 3}
    assert plan.summary["renamed_to_avoid_clash"] == 1


def test_a_price_fix_is_its_own_decision_and_a_relabel_with_one_stays_a_relabel():
    plan = plan_export(_frame([
        {"path": "phone/f.png", "label": "phone", "current_label": "phone", "last_action": "price",
         "price_fixed": True},
        {"path": "phone/g.png", "label": "phone", "current_label": "bag", "last_action": "relabel",
         "price_fixed": True},
        {"path": "phone/h.png", "label": "phone", "current_label": "phone", "last_action": "keep"},
    ]))
    assert plan.manifest["decision"].tolist() == ["price_fixed", "relabelled", "kept"]
    assert plan.summary["decisions"]["price_fixed"] == 1 and plan.summary["decisions"]["kept"] == 1
    assert "1 relabelled, 1 with a fixed price, 0 deleted" in format_summary(plan.summary)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "a\\b", "nul\x00byte", "CON", "lpt1.txt", ".hidden",
                                  "trailing ", "line\nbreak", "x" * 300, "what?"])
def test_unsafe_class_names_are_refused(name, tmp_path):
    assert unsafe_name_reason(name) is not None
    samples = _frame([{"path": "bag/a.png", "label": "bag", "current_label": name, "last_action": "relabel"}])
    with pytest.raises(UnsafeClassName, match="not safe as folder names"):
        plan_export(samples)
    assert not (tmp_path / "out").exists()


def test_safe_class_names_pass():
    check_class_names(["bag", "T-shirt/top".replace("/", "-"), "Sneaker", "ankle boot", "café", "con-tainer"])


def test_a_path_that_would_escape_its_class_folder_is_refused():
    samples = _frame([{"path": "bag/../../etc/passwd", "label": "bag", "current_label": "bag"}])
    with pytest.raises(ExportError, match="unsafe sample path"):
        plan_export(samples)
