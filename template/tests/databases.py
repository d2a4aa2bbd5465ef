"""Prediction log databases for tests: a SQLite file, and a real PostgreSQL database.

The PostgreSQL fixtures need a server: TEST_DATABASE_URL names an administrative
connection (default: the local server as user postgres); each test creates a
database of its own and drops it afterwards. Loaded by tests/conftest.py.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
"""The local server as user postgres, without a password: what CI's service container is."""
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", DEFAULT_ADMIN_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'predictions.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"predictions_test_{uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(
            f"no PostgreSQL server at {make_url(ADMIN_URL).render_as_string()}: "
            f"{str(exc.orig).splitlines()[0]}; start one or set TEST_DATABASE_URL"
        )
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url
