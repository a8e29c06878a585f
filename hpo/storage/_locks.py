"""A cross-process lock around "count the trials, then start one".

Workers on many hosts share one trial budget. Counting finished and running
trials and creating the next one must happen under one lock, or two workers
near the end both see room for one more trial and the study overshoots.
PostgreSQL and MySQL give named locks on the server, one per study; SQLite
(one host) a lock file beside the database, shared by all its studies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

_ENGINES: dict[str, sa.Engine] = {}


def _key(study_name: str) -> int:
    """A 64-bit lock id for the study (advisory locks are keyed by integers)."""
    return int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def budget_lock(url: str, study_name: str) -> Iterator[None]:
    """Hold a lock named after the study for the duration of the block."""
    if url.startswith("grpc://"):
        yield  # no lock behind the proxy: the worker settles the budget by trial numbers
        return
    import sqlalchemy as sa

    from hpo.storage._url import normalize_url

    url = normalize_url(url)  # the drivers hpo installs (postgresql:// means psycopg 3)
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database or "hpo"
        lock_path = Path(f"{db}.hpo-lock") if db != ":memory:" else Path("/tmp/hpo-memory.lock")
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = sa.create_engine(url, pool_pre_ping=True, pool_size=1)
    key = _key(study_name)
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        else:
            name = f"hpo-{key & 0xFFFFFFFF:x}"
            conn.execute(sa.text("SELECT GET_LOCK(:n, 600)"), {"n": name})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
        conn.commit()
