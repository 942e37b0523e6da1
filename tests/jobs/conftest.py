"""These tests run on every database backend: `db_path` is a SQLite file, then a fresh PostgreSQL database."""
import pytest

from tests.conftest import backend_database
from tests.postgres import BACKENDS


@pytest.fixture(params=BACKENDS)
def db_path(request, tmp_path):
    return backend_database(request, tmp_path)
