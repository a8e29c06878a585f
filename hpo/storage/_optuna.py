"""Every use of Optuna's private API in hpo, each behind one named function.

Optuna keeps a study's storage and a trial's database id private, and its
heartbeat helpers live in a private module; hpo needs them because its
workers create trials under a budget lock and beat themselves instead of
running ``study.optimize``. Nothing else in the package may touch a private
Optuna name: an Optuna upgrade that moves one then breaks this module and its
test (``tests/storage/test_optuna_private.py``), nowhere else.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

_UTC = datetime.timezone.utc

if TYPE_CHECKING:
    from collections.abc import Callable

    import grpc
    import optuna
    from optuna.trial import FrozenTrial

# The private names relied on, for the test that checks they still exist.
PRIVATE_NAMES = (
    "optuna.Study._storage",
    "optuna.Study._study_id",
    "optuna.Trial._trial_id",
    "optuna.trial.FrozenTrial._trial_id",
    "optuna.storages._heartbeat.is_heartbeat_enabled",
    "optuna.storages._heartbeat.BaseHeartbeat.record_heartbeat",
    "optuna.storages._heartbeat.BaseHeartbeat.get_heartbeat_interval",
    "optuna.storages.RDBStorage._get_stale_trial_ids",
    "optuna.storages.GrpcStorageProxy._setup",
    "optuna.storages._grpc.client.GrpcClientCache",
    "optuna.storages._grpc.servicer.OptunaStorageProxyService",
    "optuna.storages._grpc.auto_generated.api_pb2_grpc.StorageServiceStub",
    "optuna.storages._grpc.auto_generated.api_pb2_grpc.add_StorageServiceServicer_to_server",
    "optuna.storages._rdb.models.TrialModel",
    "optuna.storages._rdb.models.TrialParamModel",
    "optuna.storages._rdb.models.TrialValueModel",
    "optuna.storages._rdb.models.TrialIntermediateValueModel",
    "optuna.storages._rdb.models.TrialUserAttributeModel",
    "optuna.storages._rdb.models.TrialSystemAttributeModel",
)


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The study's storage: trials are written by id when no ``Trial`` object is at hand."""
    return study._storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's database id (``number`` counts within a study; storage calls need the id)."""
    return int(trial._trial_id)


def reload_trial(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
    """The trial as stored now, e.g. after another worker finished it."""
    return storage_of(study).get_trial(trial_id(trial))


def set_user_attr(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any
) -> None:
    """Write a user attr on a RUNNING trial known only frozen (another worker's, a sampler's)."""
    storage_of(study).set_trial_user_attr(trial_id(trial), key, value)


def set_system_attr(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any
) -> None:
    """Write a system attr (``Trial.set_system_attr`` was removed from Optuna's public API)."""
    storage_of(study).set_trial_system_attr(trial_id(trial), key, value)


def mark_failed(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Fail another process's RUNNING trial; False if someone else changed it first.

    ``study.tell`` accepts only trials this process asked for or their numbers,
    and would run the sampler's ``after_trial`` for a trial it never sampled.
    """
    from optuna.trial import TrialState

    return bool(storage_of(study).set_trial_state_values(trial_id(trial), state=TrialState.FAIL))


def heartbeat_enabled(storage: optuna.storages.BaseStorage) -> bool:
    """Whether the storage keeps Optuna's heartbeat table (an RDB opened for workers)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage))


def heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """The interval the storage was opened with (None without heartbeats)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if heartbeat_enabled(storage) and callable(get) else None


def record_heartbeat(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> None:
    """Beat for a trial: ``study.optimize`` beats only for trials it created itself."""
    storage_of(study).record_heartbeat(trial_id(trial))  # type: ignore[attr-defined]


def stale_trials(study: optuna.Study) -> list[FrozenTrial]:
    """RUNNING trials whose heartbeat is older than the grace period.

    Optuna's ``fail_stale_trials`` fails them without a reason; hpo stores
    one first, so it needs the list itself.
    """
    storage = storage_of(study)
    ids = storage._get_stale_trial_ids(study._study_id)  # type: ignore[attr-defined]
    return [storage.get_trial(i) for i in ids]


def add_proxy_service(server: grpc.Server, storage: optuna.storages.BaseStorage) -> None:
    """Serve ``storage`` on a gRPC server hpo built itself.

    Optuna's ``run_grpc_proxy_server`` binds a plaintext port and takes no
    interceptors; its servicer and the generated registration function are
    the parts that let hpo add TLS and a token check around the same service.
    """
    from optuna.storages._grpc.auto_generated.api_pb2_grpc import (
        add_StorageServiceServicer_to_server,
    )
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)  # type: ignore[no-untyped-call]


def proxy_client(
    host: str, port: int, channel: Callable[[], grpc.Channel]
) -> optuna.storages.BaseStorage:
    """A ``GrpcStorageProxy`` on a channel hpo builds (TLS and the token).

    ``GrpcStorageProxy`` always opens a plaintext channel in its private
    ``_setup``; this subclass replaces that one method and keeps the rest
    (requests, error mapping, the trial cache). ``channel`` is a factory
    because Optuna calls ``_setup`` from its constructor.
    """
    import warnings

    import optuna
    from optuna.storages._grpc.auto_generated.api_pb2_grpc import StorageServiceStub
    from optuna.storages._grpc.client import GrpcClientCache

    class _ChannelProxy(optuna.storages.GrpcStorageProxy):
        def __init__(self) -> None:
            self._make_channel = channel
            super().__init__(host=host, port=port)

        def _setup(self) -> None:
            self._channel = self._make_channel()
            self._stub = StorageServiceStub(self._channel)  # type: ignore[no-untyped-call]
            self._cache = GrpcClientCache(self._stub)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _ChannelProxy()


def sql_backend(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The RDB storage under the study's (a URL is opened wrapped in Optuna's cache)."""
    import optuna

    storage = storage_of(study)
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def read_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial of the study, read in six plain queries where the storage is SQL.

    Optuna's RDB storage builds an ORM object per row (about 0.7 ms per trial
    with hpo's attributes: 7 s for a 10,000-trial report); reading the same
    tables as rows and decoding each distribution once gives the same
    ``FrozenTrial`` list (``tests/storage/test_optuna_private.py`` compares
    them) in a fraction of that. Any other storage (journal, gRPC proxy) is
    read through Optuna.
    """
    import json

    import optuna
    import sqlalchemy as sa
    from optuna.distributions import json_to_distribution
    from optuna.storages._rdb import models

    backend = sql_backend(study)
    if backend is None:
        return list(study.get_trials(deepcopy=False))

    trials_t = models.TrialModel.__table__
    in_study = sa.select(trials_t.c.trial_id).where(trials_t.c.study_id == study._study_id)

    def rows(model: Any, *columns: str) -> Any:
        table = model.__table__
        query = sa.select(*(table.c[c] for c in columns)).where(table.c.trial_id.in_(in_study))
        return connection.execute(query)

    with backend.engine.connect() as connection:
        head = connection.execute(
            sa.select(
                trials_t.c.trial_id,
                trials_t.c.number,
                trials_t.c.state,
                trials_t.c.datetime_start,
                trials_t.c.datetime_complete,
            )
            .where(trials_t.c.study_id == study._study_id)
            .order_by(trials_t.c.trial_id)
        ).all()
        ids = [r[0] for r in head]
        values: dict[int, dict[int, float]] = {i: {} for i in ids}
        value_of = models.TrialValueModel.stored_repr_to_value
        for tid, objective, value, kind in rows(
            models.TrialValueModel, "trial_id", "objective", "value", "value_type"
        ):
            values[tid][objective] = value_of(value, kind)
        steps: dict[int, dict[int, float]] = {i: {} for i in ids}
        step_of = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
        for tid, step, value, kind in rows(
            models.TrialIntermediateValueModel,
            "trial_id",
            "step",
            "intermediate_value",
            "intermediate_value_type",
        ):
            steps[tid][step] = step_of(value, kind)
        params: dict[int, dict[str, Any]] = {i: {} for i in ids}
        dists: dict[int, dict[str, Any]] = {i: {} for i in ids}
        decoded: dict[str, Any] = {}
        param_t = models.TrialParamModel.__table__
        for tid, name, value, dist_json in connection.execute(
            sa.select(
                param_t.c.trial_id,
                param_t.c.param_name,
                param_t.c.param_value,
                param_t.c.distribution_json,
            )
            .where(param_t.c.trial_id.in_(in_study))
            .order_by(param_t.c.param_id)
        ):
            dist = decoded.get(dist_json)
            if dist is None:
                dist = decoded[dist_json] = json_to_distribution(dist_json)
            params[tid][name] = dist.to_external_repr(value)
            dists[tid][name] = dist
        attrs: list[dict[int, dict[str, Any]]] = []
        for model in (models.TrialUserAttributeModel, models.TrialSystemAttributeModel):
            found: dict[int, dict[str, Any]] = {i: {} for i in ids}
            for tid, key, text in rows(model, "trial_id", "key", "value_json"):
                found[tid][key] = json.loads(text)
            attrs.append(found)

    def local(stamp: Any) -> Any:
        # Stored as naive UTC; Optuna gives naive local time.
        if stamp is None:
            return None
        return stamp.replace(tzinfo=_UTC).astimezone().replace(tzinfo=None)

    out = []
    for tid, number, state, start, complete in head:
        by_objective = values[tid]
        out.append(
            optuna.trial.FrozenTrial(
                number=number,
                state=state,
                value=None,
                values=[by_objective[k] for k in sorted(by_objective)] or None,
                datetime_start=local(start),
                datetime_complete=local(complete),
                params=params[tid],
                distributions=dists[tid],
                user_attrs=attrs[0][tid],
                system_attrs=attrs[1][tid],
                intermediate_values=steps[tid],
                trial_id=tid,
            )
        )
    return out
