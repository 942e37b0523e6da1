"""What accepting an audit's suggestions decides: at most one decision per sample, from its open flags.

`plan_acceptance(flags)` turns flags into decisions the way a reviewer who trusts the audit
would make them on the Review page:
- broken: delete the file from the dataset (the source file is never touched);
- duplicate: keep one member of each group and delete the others; the kept one is a member
  not flagged as a mislabel where there is one, then the lowest sample id;
- mislabel: relabel to the suggested class, unless the sample is deleted above or already
  carries that label.
Price and quality flags are not accepted automatically: a price is listing metadata, not the
label, and a poor photo needs a person to look at it.
"""
from __future__ import annotations

import pandas as pd

ACCEPTABLE_KINDS = ("mislabel", "duplicate", "broken")
#: Columns of a plan: one row per decision, deletions first, then relabels, each by sample id.
PLAN_COLUMNS = ["sample_id", "path", "kind", "action", "new_label", "flag_id", "expected_last_id"]
#: Columns plan_acceptance reads (db.review.QUEUE_COLUMNS has them all).
FLAG_COLUMNS = ["flag_id", "kind", "suggested_label", "group_id", "sample_id", "path", "current_label", "deleted",
                "last_correction_id"]


def plan_acceptance(flags: pd.DataFrame) -> pd.DataFrame:
    """The decisions that accept `flags` (FLAG_COLUMNS, any order), as PLAN_COLUMNS rows.

    Samples already deleted get no decision. expected_last_id is the sample's latest correction
    id as the flags were read, so a decision made since then makes the whole action a conflict.
    """
    missing = sorted(set(FLAG_COLUMNS) - set(flags.columns))
    if missing:
        raise ValueError(f"flags lack the columns {', '.join(missing)}")
    flags = flags[flags["kind"].isin(ACCEPTABLE_KINDS) & ~flags["deleted"].astype(bool)]
    deletions = _deletions(flags)
    relabels = _relabels(flags, deleted=set(deletions["sample_id"]))
    plan = pd.concat([deletions, relabels], ignore_index=True)
    plan["action"] = ["delete"] * len(deletions) + ["relabel"] * len(relabels)
    plan["new_label"] = plan["new_label"].where(plan["action"] == "relabel", None)
    plan = plan.rename(columns={"last_correction_id": "expected_last_id"})
    return plan[PLAN_COLUMNS].reset_index(drop=True)


def _deletions(flags: pd.DataFrame) -> pd.DataFrame:
    """Broken files and every duplicate-group member but the kept one, one row per sample."""
    suspects = set(flags.loc[flags["kind"] == "mislabel", "sample_id"])
    broken = flags[flags["kind"] == "broken"]
    members = flags[(flags["kind"] == "duplicate") & flags["group_id"].notna()].copy()
    members["suspect"] = members["sample_id"].isin(suspects)
    ranked = members.sort_values(["group_id", "suspect", "sample_id"])
    copies = ranked[ranked.duplicated("group_id", keep="first")]
    chosen = pd.concat([broken, copies]).drop_duplicates("sample_id").sort_values("sample_id")
    return chosen.assign(new_label=None)[["sample_id", "path", "kind", "new_label", "flag_id", "last_correction_id"]]


def _relabels(flags: pd.DataFrame, *, deleted: set[int]) -> pd.DataFrame:
    """Mislabel flags with a suggestion that would change the sample's label, one row per sample."""
    mislabels = flags[(flags["kind"] == "mislabel") & flags["suggested_label"].fillna("").astype(bool)]
    mislabels = mislabels[~mislabels["sample_id"].isin(deleted)
                          & (mislabels["suggested_label"] != mislabels["current_label"])]
    chosen = mislabels.drop_duplicates("sample_id").sort_values("sample_id")
    return chosen.rename(columns={"suggested_label": "new_label"})[
        ["sample_id", "path", "kind", "new_label", "flag_id", "last_correction_id"]]
