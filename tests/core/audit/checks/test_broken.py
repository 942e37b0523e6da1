"""The broken check: every file the scan could not decode is flagged with the scan's reason, nothing else."""
from __future__ import annotations

from core.audit.checks.broken import BrokenCheck
from tests.conftest import make_image


def test_unreadable_files_are_flagged_with_their_reason(tmp_path, scanned_context):
    for index in range(3):
        make_image(tmp_path / "a" / f"ok-{index}.jpg")
    (tmp_path / "a/empty.jpg").write_bytes(b"")
    (tmp_path / "a/page.jpg").write_bytes(b"<html>404 Not Found</html>")
    truncated = make_image(tmp_path / "a/truncated.jpg", size=(64, 64)).read_bytes()
    (tmp_path / "a/truncated.jpg").write_bytes(truncated[: len(truncated) // 3])
    context = scanned_context(tmp_path)
    result = BrokenCheck().find_issues(context)
    flagged = result.flagged()
    paths = context.samples.loc[flagged.index, "path"]
    assert set(paths) == {"a/empty.jpg", "a/page.jpg", "a/truncated.jpg"}
    assert (flagged["broken_score"] == 0.0).all()
    reasons = dict(zip(paths, flagged["reason"]))
    assert "empty file" in reasons["a/empty.jpg"] and "not an image" in reasons["a/page.jpg"]
    assert "truncated" in reasons["a/truncated.jpg"]
    assert flagged["evidence"].map(lambda e: "error" in e).all()
    assert (result.issues.drop(flagged.index)["broken_score"] == 1.0).all()
    assert result.summary == {"broken": 3, "samples": 6}
