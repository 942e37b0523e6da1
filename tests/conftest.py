"""Shared test fixtures: tiny real images on disk and a session factory on a temporary database.

The database is a SQLite file in tmp_path; where a test folder's conftest
makes `db_path` run on every backend (tests/db, tests/jobs, tests/cli, via
`backend_database`), it is also a fresh database on a throwaway PostgreSQL
server (tests/postgres.py). Tests marked `sqlite_only` (they handle the file
itself) run on SQLite alone, those marked `postgresql_only` on PostgreSQL alone.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image

from db.engine import make_engine, make_session_factory
from tests.postgres import REQUIRE_ENV, DatabaseMaker, PostgresUnavailable, throwaway_server


def make_image(
    path: str | Path,
    size: tuple[int, int] = (32, 32),
    color: Optional[tuple[int, ...]] = None,
    mode: str = "RGB",
    **save_options,
) -> Path:
    """Write a small real image to `path` (format from its suffix) and return the path.

    size: (width, height) in pixels. color: a solid fill (one value per band of
    `mode`); None draws a smooth random texture seeded by the file name, so
    differently named images get different pHashes and the same name the same
    image. mode: any PIL mode, e.g. "RGB", "L", "RGBA", "P", "CMYK", "I;16".
    save_options go to `Image.save` (quality, exif, ...). Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if color is not None:
        image = Image.new(mode, size, color)
    else:
        image = _texture(size, seed=path.name)
        if mode != "RGB":
            image = _texture_in_mode(image, mode)
    image.save(path, **save_options)
    return path


def wait_gone(pid: int, *, timeout_s: float = 60.0) -> None:
    """Wait until process `pid` (a worker spawned by jobs.runner.spawn_job, which waits for it) has ended and
    been reaped; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still exists after {timeout_s:.0f} s")
        time.sleep(0.05)


def _texture(size: tuple[int, int], *, seed: str) -> Image.Image:
    """A smooth RGB texture: 4x4 random blocks upscaled, so its pHash is stable under small changes."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR)


def _texture_in_mode(rgb: Image.Image, mode: str) -> Image.Image:
    if mode.startswith("I;16"):
        luma = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(luma)
    if mode == "P":
        return rgb.quantize(16)
    return rgb.convert(mode)


@pytest.fixture(autouse=True)
def restore_main_module():
    """Put back the interpreter's __main__ after each test. Streamlit's script runner (AppTest) installs the
    script it ran as sys.modules["__main__"] and leaves it there; a later test that starts processes with
    "spawn" would then run that script (app.py) in every child, which is slow and, with eight children
    opening the default database at once, sometimes fails before the test's own code runs."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture
def db_path(tmp_path) -> Path:
    """A fresh SQLite database file path (tables are created by the `factory` fixture)."""
    return tmp_path / "listing-audit.db"


@pytest.fixture(scope="session")
def postgres_databases():
    """A DatabaseMaker on this test run's PostgreSQL server, started on first use and stopped at the end."""
    try:
        with throwaway_server() as url:
            maker = DatabaseMaker(url)
            yield maker
            maker.dispose()
    except PostgresUnavailable as error:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{error} ({REQUIRE_ENV}=1)")
        pytest.skip(str(error))


def backend_database(request, tmp_path) -> Path | str:
    """For a `db_path` fixture parametrized by backend: a SQLite file path, or the URL of a fresh PostgreSQL
    database that is dropped after the test."""
    if request.param == "sqlite":
        return tmp_path / "listing-audit.db"
    maker = request.getfixturevalue("postgres_databases")
    url = maker.create()
    request.addfinalizer(lambda: maker.drop(url))
    return url


#: Markers that keep a test to one backend where `db_path` covers every backend.
ONE_BACKEND_MARKERS = {"sqlite_only": "sqlite", "postgresql_only": "postgresql"}


def pytest_collection_modifyitems(config, items):
    """Run tests marked sqlite_only or postgresql_only on that backend alone: drop their other cases."""
    def other_backend(item) -> bool:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("db_path")
        return any(item.get_closest_marker(marker) and backend not in (None, only)
                   for marker, only in ONE_BACKEND_MARKERS.items())

    dropped = [item for item in items if other_backend(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not other_backend(item)]


@pytest.fixture
def app_db(db_path, monkeypatch) -> Path:
    """`db_path`, as the database the app reads (LISTING_AUDIT_DB), with no preferred dataset;
    the app may scan folders below the test's tmp_path (LISTING_AUDIT_ROOTS)."""
    monkeypatch.setenv("LISTING_AUDIT_DB", str(db_path))
    monkeypatch.setenv("LISTING_AUDIT_ROOTS", str(db_path.parent))
    monkeypatch.delenv("LISTING_AUDIT_DATASET", raising=False)
    return db_path


@pytest.fixture
def factory(db_path):
    """A session factory on a new SQLite file in tmp_path, tables created."""
    engine = make_engine(db_path)
    yield make_session_factory(engine)
    engine.dispose()
