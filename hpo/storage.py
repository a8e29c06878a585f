"""Storage URLs: resolution, redaction and opening Optuna's RDB storage.

The URL is resolved in one place (command line > ``HPO_STORAGE`` > study file
> default SQLite file) and never printed with its password.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import StorageError

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "sqlite:///storage/hpo.db"
ENV_VAR = "HPO_STORAGE"

# Heartbeats let a worker on another host notice a dead one's RUNNING trial.
HEARTBEAT_INTERVAL = int(os.environ.get("HPO_HEARTBEAT_INTERVAL", "30"))
GRACE_PERIOD = int(os.environ.get("HPO_GRACE_PERIOD", "90"))
# Behind the gRPC proxy there is no heartbeat table: a worker beats by changing
# this trial system attr, and others watch it change (no clocks compared).
BEAT_ATTR = "hpo:beat"
# Counts of re-queues by cause, on the queued trial: {"lost": k, "interrupted": j}.
REQUEUES_ATTR = "hpo:requeues"

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:)[^@\s]*(@)")


def resolve_url(cli: str | None = None, file_value: str | None = None) -> str:
    """The storage URL to use, from the first of: flag, environment, study file, default."""
    for value in (cli, os.environ.get(ENV_VAR), file_value):
        if value:
            return value
    return DEFAULT_STORAGE


def redact(text: str) -> str:
    """Hide any password in a URL or in a message that quotes one."""
    return _PASSWORD_RE.sub(r"\1***\2", text)


def normalize_url(url: str) -> str:
    """Validate a URL and pick the drivers hpo installs (psycopg 3, PyMySQL)."""
    import sqlalchemy as sa

    if url.startswith("grpc://"):
        host, _, port = url.removeprefix("grpc://").rpartition(":")
        if not host or not port.isdigit():
            raise StorageError(f"storage: '{redact(url)}' must look like grpc://HOST:PORT")
        return url
    try:
        parsed = sa.make_url(url)
    except Exception:
        raise StorageError(
            f"storage: '{redact(url)}' is not a valid database URL; examples: "
            "sqlite:///storage/hpo.db, postgresql://user@host:5432/db, mysql://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise StorageError(
            f"storage: unsupported database '{backend}' in '{redact(url)}'; "
            "use sqlite, postgresql or mysql"
        )
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return str(parsed.render_as_string(hide_password=False))


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several local processes share one file: wait for the lock, don't fail.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "pool_recycle": 300}


def open_storage(url: str, *, heartbeat: bool = False) -> optuna.storages.BaseStorage:
    """Open (creating if needed) the storage, with heartbeats for workers.

    With ``heartbeat`` a trial whose worker died is failed after the grace
    period and re-queued once with the same parameters.
    """
    import warnings

    import optuna
    import sqlalchemy as sa

    url = normalize_url(url)
    if url.startswith("grpc://"):
        from optuna.storages import GrpcStorageProxy

        host, _, port = url.removeprefix("grpc://").rpartition(":")
        return GrpcStorageProxy(host=host, port=int(port))
    kwargs: dict[str, Any] = {"engine_kwargs": _engine_kwargs(url)}
    if heartbeat:
        retry = RequeueFailedTrial(max_retry=1, cause="lost")
        kwargs.update(
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            heartbeat_stale_trial_callback=retry,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **kwargs)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
        raise StorageError(
            f"storage: cannot reach '{redact(url)}': {redact(reason)[:200]}"
        ) from None
    except sa.exc.ArgumentError as exc:
        raise StorageError(
            f"storage: '{redact(url)}' is invalid: {redact(str(exc))[:200]}"
        ) from None
    except ModuleNotFoundError as exc:
        raise StorageError(
            f"storage: the database driver for '{redact(url)}' is not installed ({exc.name})"
        ) from None


class RequeueFailedTrial:
    """Queue a failed trial's parameters again, as a WAITING trial.

    The heartbeat-stale callback of Optuna's ``RetryHeartbeatStaleTrialCallback``
    with the same ``failed_trial`` and ``retry_history`` system attrs (Optuna's
    helpers read them), with two differences: the queued trial starts clean (the
    failed attempt's ``fail_reason``, worker and host stay on that attempt), and
    ``max_retry`` counts only re-queues of one ``cause``, so a trial interrupted
    by Ctrl-C keeps its one retry for a worker that dies later.
    """

    def __init__(self, *, max_retry: int | None, cause: str) -> None:
        self.max_retry, self.cause = max_retry, cause

    def will_requeue(self, trial: optuna.trial.FrozenTrial) -> bool:
        used = int(trial.system_attrs.get(REQUEUES_ATTR, {}).get(self.cause, 0))
        return self.max_retry is None or used < self.max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        import optuna

        queued = "fixed_params" in trial.system_attrs  # enqueued by hand, not suggested yet
        if not (trial.params or queued) or not self.will_requeue(trial):
            return
        counts = dict(trial.system_attrs.get(REQUEUES_ATTR, {}))
        counts[self.cause] = int(counts.get(self.cause, 0)) + 1
        system_attrs = {k: v for k, v in trial.system_attrs.items() if k != BEAT_ATTR}
        system_attrs.update(
            failed_trial=trial.system_attrs.get("failed_trial", trial.number),
            retry_history=[*trial.system_attrs.get("retry_history", []), trial.number],
        )
        system_attrs[REQUEUES_ATTR] = counts
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs=system_attrs,
            )
        )


def native_heartbeat(storage: optuna.storages.BaseStorage) -> bool:
    """Whether the storage keeps Optuna's heartbeat table (RDB opened for workers)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage))
