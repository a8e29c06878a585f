"""Shared fixtures: real databases, never mocks.

PostgreSQL-backed tests read ``HPO_TEST_POSTGRES_URL`` (``.ci/run`` sets it)
and get a fresh database per test, dropped afterwards. MariaDB tests read
``HPO_TEST_MYSQL_URL`` the same way. ``image_study`` is the one image study
with real training, built once per session (``tests/image_study.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.image_study import ImageStudy, build

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parents[1]


def _fresh_database(admin_url: str, kind: str) -> Iterator[str]:
    url = sa.make_url(admin_url)
    name = f"hpo_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"{kind} at {url.render_as_string(hide_password=True)} unreachable: {exc}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            if kind == "postgres":
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": name},
                )
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database URL."""
    admin = os.environ.get("HPO_TEST_POSTGRES_URL")
    if not admin:
        if os.environ.get("CI"):
            pytest.fail("HPO_TEST_POSTGRES_URL is not set in CI")
        pytest.skip("HPO_TEST_POSTGRES_URL not set")
    yield from _fresh_database(admin, "postgres")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MariaDB/MySQL database URL."""
    admin = os.environ.get("HPO_TEST_MYSQL_URL")
    if not admin:
        if os.environ.get("CI"):
            pytest.fail("HPO_TEST_MYSQL_URL is not set in CI")
        pytest.skip("HPO_TEST_MYSQL_URL not set")
    yield from _fresh_database(admin, "mysql")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hpo.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage backend in turn, for contract tests run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hpo.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def image_study(tmp_path_factory: pytest.TempPathFactory) -> ImageStudy:
    """The session's trained image study (and the continued 0.1.0 study beside it)."""
    study = build(tmp_path_factory.mktemp("image-study"))
    assert study.run.returncode == 0, study.run.stderr
    return study
