"""Riding out a database that is away for a moment (restart, fail-over).

Storage calls of the worker loop go through ``retrying``: SQLAlchemy's
connection errors (the pool pings and reconnects on the next try) and, behind
the gRPC proxy, an unavailable proxy or a database error it passes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def _retryable() -> tuple[tuple[type[Exception], ...], type[Exception] | None]:
    """The errors worth a retry, and gRPC's (imported here: only the proxy needs grpc)."""
    import optuna
    import sqlalchemy as sa

    errors: tuple[type[Exception], ...] = (
        sa.exc.OperationalError,
        sa.exc.InterfaceError,
        optuna.exceptions.StorageInternalError,
    )
    try:
        from grpc import RpcError
    except ImportError:
        return errors, None
    return (*errors, RpcError), RpcError


def _transient_rpc(exc: Exception) -> bool:
    """The proxy restarting, or the database behind it away for a moment."""
    import grpc

    code = exc.code() if callable(getattr(exc, "code", None)) else None  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    details = str(exc.details()) if callable(getattr(exc, "details", None)) else ""  # type: ignore[attr-defined]
    return code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) and any(
        word in details
        for word in (
            "OperationalError",
            "InterfaceError",
            "StorageInternalError",
            # Optuna's proxy words a failed commit (StorageInternalError) this way.
            "exception is raised during the commit",
        )
    )


def retrying(
    call: Callable[[], T],
    what: str,
    patience: float = 120.0,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Retry a storage call while the database is briefly away (restart, failover).

    Waits 0.5 s, then twice as long each time up to 10 s, until ``patience``
    seconds of waiting are used up; ``sleep`` is injectable so tests can check
    the back-off without waiting.
    """
    errors, rpc_error = _retryable()
    delay, waited = 0.5, 0.0
    while True:
        try:
            return call()
        except errors as exc:
            if rpc_error is not None and isinstance(exc, rpc_error) and not _transient_rpc(exc):
                raise
            if waited >= patience:
                from hpo.errors import StorageError
                from hpo.storage._url import redact

                raise StorageError(
                    f"storage unreachable for {waited:.0f} s during {what}: "
                    f"{redact(str(exc).splitlines()[0])[:160]}"
                ) from None
            log.warning("database unavailable during %s; retrying in %.1f s", what, delay)
            sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)
