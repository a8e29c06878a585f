"""Riding out a database that is away for a moment (restart, fail-over)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def retrying(call: Callable[[], T], what: str, patience: float = 120.0) -> T:
    """Retry a storage call while the database is briefly away (restart, failover)."""
    import optuna
    import sqlalchemy as sa

    delay, waited = 0.5, 0.0
    while True:
        try:
            return call()
        except (
            sa.exc.OperationalError,
            sa.exc.InterfaceError,
            optuna.exceptions.StorageInternalError,
        ) as exc:
            if waited >= patience:
                from hpo.errors import StorageError
                from hpo.storage import redact

                raise StorageError(
                    f"storage unreachable for {waited:.0f} s during {what}: "
                    f"{redact(str(exc).splitlines()[0])[:160]}"
                ) from None
            log.warning("database unavailable during %s; retrying in %.1f s", what, delay)
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)
