"""``retrying``: back-off timing, giving up, and a real dropped PostgreSQL connection."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
import sqlalchemy as sa

from hpo.errors import StorageError
from hpo.storage import retrying


def flaky(failures: int, error: Exception) -> Callable[[], str]:
    """A call that raises ``error`` ``failures`` times, then answers."""
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error
        return "ok"

    return call


def db_error(text: str = "server closed the connection") -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, Exception(text))


def test_backs_off_doubling_until_the_call_succeeds() -> None:
    slept: list[float] = []
    assert retrying(flaky(3, db_error()), "ask", sleep=slept.append) == "ok"
    assert slept == [0.5, 1.0, 2.0]


def test_the_wait_is_capped_and_patience_ends_it() -> None:
    slept: list[float] = []
    error = db_error("password authentication for postgresql://u:hunter2@db/x failed")
    with pytest.raises(StorageError, match="unreachable for 36 s during tell") as info:
        retrying(flaky(100, error), "tell", patience=30, sleep=slept.append)
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]  # 35.5 s >= 30: give up
    assert "hunter2" not in str(info.value)


def test_other_errors_are_not_retried() -> None:
    slept: list[float] = []
    with pytest.raises(ValueError):
        retrying(flaky(1, ValueError("a bug")), "ask", sleep=slept.append)
    assert slept == []


class _Rpc(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_proxy_errors_retried_only_when_transient() -> None:
    slept: list[float] = []
    assert retrying(flaky(1, _Rpc(grpc.StatusCode.UNAVAILABLE)), "ask", sleep=slept.append)
    passed_on = _Rpc(grpc.StatusCode.UNKNOWN, "sqlalchemy OperationalError: gone")
    assert retrying(flaky(1, passed_on), "ask", sleep=slept.append)
    assert slept == [0.5, 0.5]
    with pytest.raises(grpc.RpcError):
        retrying(flaky(1, _Rpc(grpc.StatusCode.INVALID_ARGUMENT)), "ask", sleep=slept.append)


def test_a_terminated_postgresql_connection_is_ridden_out(postgres_url: str) -> None:
    # No pre-ping: the pooled connection's death shows up as an error in the call.
    engine = sa.create_engine(postgres_url, pool_size=1)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with admin.connect() as conn:
            killed = conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            assert killed.scalar_one() is True

        def query() -> int:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())

        slept: list[float] = []
        new_pid = retrying(query, "ask", sleep=slept.append)
        assert slept == [0.5]  # one failure (the dead connection), then a fresh one
        assert new_pid != pid
    finally:
        engine.dispose()
        admin.dispose()


class _RpcError(Exception):
    def __init__(self, code: object, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> object:
        return self._code

    def details(self) -> str:
        return self._details


def test_proxy_errors_that_mean_the_database_blinked_are_retried() -> None:
    import grpc

    from hpo.storage._retry import _transient_rpc

    unknown = grpc.StatusCode.UNKNOWN
    assert _transient_rpc(_RpcError(grpc.StatusCode.UNAVAILABLE, "connection reset"))
    assert _transient_rpc(_RpcError(unknown, "An exception is raised during the commit."))
    assert _transient_rpc(_RpcError(unknown, "(psycopg.OperationalError) server closed"))
    assert not _transient_rpc(_RpcError(unknown, "KeyError: no such study"))
    assert not _transient_rpc(_RpcError(grpc.StatusCode.UNAUTHENTICATED, "OperationalError"))
