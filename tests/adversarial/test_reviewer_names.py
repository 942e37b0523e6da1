"""A reviewer name says who decided: a blank or a 100 KB one is refused in one line by the CLI and the
database layer, and an overlong one in the app's address is not used."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.corrections import MAX_REVIEWER_CHARS, DecisionError, decide
from db.engine import make_engine, make_session_factory
from db.models import Correction, Sample
from tests.cli import run_cli
from tests.conftest import make_image

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def scanned(capsys, tmp_path, db_path):
    root = tmp_path / "shop"
    for name in ("a", "b"):
        make_image(root / "bag" / f"{name}.png")
        make_image(root / "shoe" / f"{name}.png")
    assert run_cli(capsys, "scan", root, "--db", db_path, "--workers", "1")[0] == 0
    return root


def _decisions(db_path) -> int:
    with make_session_factory(make_engine(db_path))() as session:
        return session.scalar(select(func.count(Correction.id)))


@pytest.mark.parametrize("name,message", [
    ("   ", "--reviewer: the reviewer name is blank"),
    ("x" * 100_000, f"--reviewer: a reviewer name is at most {MAX_REVIEWER_CHARS} characters, not 100,000"),
])
def test_the_cli_refuses_a_blank_or_overlong_reviewer_in_one_line(capsys, scanned, db_path, name, message):
    for command in (["correct", scanned, "bag/a.png", "--keep"], ["accept", scanned]):
        code, out, err = run_cli(capsys, *command, "--reviewer", name, "--db", db_path)
        assert code != 0 and out == "" and len(err.strip().splitlines()) == 1 and message in err
    assert _decisions(db_path) == 0


def test_the_database_refuses_an_overlong_reviewer_and_strips_a_padded_one(scanned, db_path):
    factory = make_session_factory(make_engine(db_path))
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == "bag/a.png")).one()
        with pytest.raises(DecisionError, match="at most 100 characters, not 101"):
            decide(session, sample, "keep", classes=["bag", "shoe"], reviewer="y" * 101)
        assert decide(session, sample, "keep", classes=["bag", "shoe"], reviewer="  ann \n").reviewer == "ann"


def test_an_overlong_reviewer_name_in_the_address_is_not_used(scanned, app_db):
    app = AppTest.from_file(APP, default_timeout=60)
    app.query_params["reviewer"] = "z" * 5000
    app.run()
    assert not app.exception, app.exception
    assert any("5,000 characters" in warning.value and "not used" in warning.value for warning in app.sidebar.warning)
    assert app.text_input(key="reviewer").value == ""
