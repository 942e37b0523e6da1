"""The `broken` check: files the scan could not decode, with the scan's reason. Score 0 for each."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.audit.checks.base import AuditContext, Check, CheckResult, register


@register
class BrokenCheck(Check):
    """Unreadable files (empty, truncated, not an image, ...): the scan recorded why in `error`."""

    name = "broken"
    needs_readable = False

    def find_issues(self, context: AuditContext) -> CheckResult:
        samples = context.samples
        broken = ~samples["readable"].to_numpy(dtype=bool)
        errors = samples["error"].fillna("unreadable").astype(str)
        issues = pd.DataFrame({
            "is_broken_issue": broken,
            "broken_score": np.where(broken, 0.0, 1.0),
            "suggested_label": None,
            "group": None,
            "reason": [f"unreadable file: {error}" if bad else None for bad, error in zip(broken, errors)],
            "evidence": [
                {"error": error, "file_size": int(size)} if bad else {}
                for bad, error, size in zip(broken, errors, samples["file_size"].fillna(0))
            ],
        }, index=samples.index)
        context.progress(1.0, f"{int(broken.sum())} unreadable files")
        return self.result(issues, {"broken": int(broken.sum()), "samples": len(samples)})
