"""`--executor` of `listing-audit scan` and `audit`: the same rows from a local Ray instance (2 CPUs) as from
the local path, $LISTING_AUDIT_RAY_ADDRESS making Ray the default, and one-line errors when Ray cannot be used.

These tests keep to SQLite (`database`, not the backend-parametrized `db_path`): the executor changes how
images are read, never what is stored or how.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.executors import INSTALL_HINT, RAY_ADDRESS_ENV
from core.models.embeddings import cache_key
from db.embeddings import load_embeddings
from db.engine import make_engine, make_session_factory
from db.models import Job, Sample
from tests.audit_data import build_audit_dataset
from tests.cli import run_cli
from tests.ray_instance import QUIET_RAY_ENV, closed_port, local_ray

REPO = Path(__file__).resolve().parents[2]
#: What a scan stores about each file, compared between executors (ids and times aside).
SAMPLE_COLUMNS = ("path", "label", "file_size", "content_hash", "phash", "width", "height", "mode", "readable",
                  "error", "brightness", "contrast", "sharpness", "entropy", "colorfulness", "listing_id")
EMBEDDING_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def ray_address():
    with local_ray() as address:
        yield address


@pytest.fixture
def shop(tmp_path) -> Path:
    return build_audit_dataset(tmp_path / "shop")


@pytest.fixture
def no_ray_address(monkeypatch):
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)


def database(tmp_path, name: str) -> Path:
    return tmp_path / f"{name}.db"


def stored_samples(db: Path) -> list[tuple]:
    with make_session_factory(make_engine(db))() as session:
        columns = [getattr(Sample, name) for name in SAMPLE_COLUMNS]
        return [tuple(row) for row in session.execute(select(*columns).order_by(Sample.path))]


def job_params(db: Path) -> list[dict]:
    with make_session_factory(make_engine(db))() as session:
        return [json.loads(job.params_json) for job in session.scalars(select(Job).order_by(Job.id))]


def test_an_unreachable_cluster_is_one_line_and_local_still_works(capsys, monkeypatch, shop, tmp_path):
    port = closed_port()
    monkeypatch.setenv(RAY_ADDRESS_ENV, f"127.0.0.1:{port}")
    db = database(tmp_path, "local")
    for command in (("scan", shop), ("audit", shop, "--checks", "broken")):
        code, out, err = run_cli(capsys, *command, "--db", db)
        assert (code, out) == (2, "")
        assert err == (f"error: cannot reach the Ray cluster at 127.0.0.1:{port} (${RAY_ADDRESS_ENV}): "
                       "Connection refused\n")
    code, out, err = run_cli(capsys, "scan", shop, "--db", db, "--executor", "local", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["images"] == 22 and job_params(db)[-1]["executor"] == "local"


def test_ray_not_installed_is_one_line(shop, tmp_path):
    argv = ["scan", str(shop), "--db", str(database(tmp_path, "x")), "--executor", "ray"]
    blocked = f"import sys; sys.modules['ray'] = None; from cli.main import main; sys.exit(main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", blocked], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: the ray executor needs Ray Data, which is not installed")
    assert done.stderr.strip().endswith(INSTALL_HINT) and len(done.stderr.splitlines()) == 1


@pytest.mark.slow
def test_scan_on_ray_stores_the_same_rows(capsys, no_ray_address, ray_address, shop, tmp_path):
    local, on_ray = database(tmp_path, "local"), database(tmp_path, "ray")
    assert run_cli(capsys, "scan", shop, "--db", local, "--workers", "1")[0] == 0
    code, out, err = run_cli(capsys, "scan", shop, "--db", on_ray, "--executor", "ray", "--format", "json")
    assert code == 0, err
    assert [item["path"] for item in json.loads(out)["unreadable"]] == ["dear/broken.jpg"]
    assert stored_samples(on_ray) == stored_samples(local)
    assert job_params(on_ray) == [{"root": str(shop.resolve()), "workers": None, "executor": "ray"}]


@pytest.mark.slow
def test_audit_on_ray_embeds_the_photos_as_the_local_audit_does(capsys, no_ray_address, ray_address, shop, tmp_path):
    audit = ("--checks", "mislabel", "--backbone", "mobilenet_v2", "--members", "crop", "--folds", "2",
             "--format", "json")
    vectors = {}
    for executor in ("local", "ray"):
        db = database(tmp_path, executor)
        assert run_cli(capsys, "scan", shop, "--db", db, "--executor", executor)[0] == 0
        code, out, err = run_cli(capsys, "audit", shop, "--db", db, *audit, "--executor", executor)
        result = json.loads(out)
        assert code == 0 and result["failed_checks"] == {}, err
        assert result["checks"]["mislabel"]["members"]["crop"]
        assert job_params(db)[-1]["executor"] == executor
        hashes = [row[3] for row in stored_samples(db) if row[8]]
        with make_session_factory(make_engine(db))() as session:
            found = load_embeddings(session, hashes, cache_key("mobilenet_v2", image_size=112, view="crop"))
        vectors[executor] = np.stack([found[content_hash] for content_hash in hashes])
    assert vectors["ray"].shape == vectors["local"].shape == (21, 2304)
    assert float(np.abs(vectors["ray"] - vectors["local"]).max()) <= EMBEDDING_TOLERANCE


@pytest.mark.slow
def test_the_address_makes_ray_the_default(ray_address, shop, tmp_path):
    db = database(tmp_path, "ray")
    environment = {**os.environ, **QUIET_RAY_ENV, RAY_ADDRESS_ENV: ray_address}
    done = subprocess.run([sys.executable, "-m", "cli.main", "scan", str(shop), "--db", str(db), "--format", "json"],
                          cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images"] == 22
    assert job_params(db)[0]["executor"] == "ray"
