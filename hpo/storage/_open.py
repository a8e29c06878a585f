"""Opening Optuna's RDB storage (or the gRPC proxy) with errors a user can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.errors import StorageError
from hpo.storage import _optuna as optuna_private
from hpo.storage._heartbeat import heartbeat_settings
from hpo.storage._proxy import client_channel, parse_proxy_url
from hpo.storage._requeue import RequeueFailedTrial
from hpo.storage._url import normalize_url, redact

if TYPE_CHECKING:
    import optuna


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several local processes share one file: wait for the lock, don't fail.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "pool_recycle": 300}


def _open_proxy(url: str) -> optuna.storages.BaseStorage:
    """The gRPC proxy: plaintext as Optuna opens it, or TLS with the token (``?tls=1``)."""
    import warnings

    import optuna

    address = parse_proxy_url(url)
    channel = client_channel(address, url)
    if channel is not None:
        return optuna_private.proxy_client(address.host, address.port, channel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.GrpcStorageProxy(host=address.host, port=address.port)


def open_storage(url: str, *, heartbeat: bool = False) -> optuna.storages.BaseStorage:
    """Open (creating if needed) the storage, with heartbeats for workers.

    With ``heartbeat`` a trial whose worker died is failed after the grace
    period and re-queued once with the same parameters.
    """
    import time
    import warnings

    import optuna
    import sqlalchemy as sa

    url = normalize_url(url)
    if url.startswith("grpc://"):
        return _open_proxy(url)
    kwargs: dict[str, Any] = {"engine_kwargs": _engine_kwargs(url)}
    if heartbeat:
        settings = heartbeat_settings()
        kwargs.update(
            heartbeat_interval=settings.interval,
            grace_period=settings.grace_period,
            heartbeat_stale_trial_callback=RequeueFailedTrial(max_retry=1, cause="lost"),
        )
    try:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, **kwargs)
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError) as exc:
                # Workers starting together on an empty database race to create
                # Optuna's tables: the loser sees "already exists" and retries.
                if "already exists" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")
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
