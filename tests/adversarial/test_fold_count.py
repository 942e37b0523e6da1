"""`--folds 100` on twelve listings: the mislabel check makes the folds the data allows and says so, in the CLI's
summary and in the audit's stored warnings, instead of quietly judging with fewer."""
from __future__ import annotations

import json

from sqlalchemy import select

from db.engine import make_engine, make_session_factory
from db.models import Job
from tests.cli import run_cli
from tests.conftest import make_image


def test_more_folds_than_listings_are_reduced_with_a_warning(capsys, tmp_path, db_path):
    root = tmp_path / "shop"
    for label in ("bag", "shoe"):
        for index in range(6):
            make_image(root / label / f"{label}{index}.png", size=(40, 40))
    assert run_cli(capsys, "scan", root, "--db", db_path, "--workers", "1")[0] == 0
    code, out, err = run_cli(capsys, "audit", root, "--db", db_path, "--checks", "mislabel", "--folds", "100",
                             "--backbone", "pixels")
    assert code == 0, err
    assert "  warning: 6 folds instead of the 100 asked for: the largest class has 6 listings" in out.splitlines()
    with make_session_factory(make_engine(db_path))() as session:
        result = json.loads(session.scalars(select(Job.result_json).where(Job.kind == "audit")).one())
    mislabel = result["checks"]["mislabel"]
    assert mislabel["folds"] == 6 and mislabel["audited"] == 12
    assert "6 folds instead of the 100 asked for" in " ".join(mislabel["warnings"])
