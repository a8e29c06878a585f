"""Every private Optuna name hpo relies on, exercised against a real SQLite storage.

``hpo.storage._optuna`` is the only module that touches Optuna's private API.
If an Optuna upgrade renames or moves one of these, this file fails, and it
names the attribute; no other test should be the first to notice.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo.storage import open_storage
from hpo.storage import optuna_private as private

# hpo beats outside study.optimize on purpose; Optuna warns about it on every ask.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")


@pytest.fixture
def beating(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> optuna.Study:
    """A study on a storage opened for workers (heartbeat table in use), 1 s beats."""
    monkeypatch.setenv("HPO_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("HPO_GRACE_PERIOD", "1")
    storage = open_storage(sqlite_url, heartbeat=True)
    return optuna.create_study(study_name="private", storage=storage, direction="maximize")


def _owner(path: str, study: optuna.Study) -> Any:
    """The object that should carry a private name: a live instance, a class or a module."""
    trial = study.ask()
    live = {
        "optuna.Study": study,
        "optuna.Trial": trial,
        "optuna.trial.FrozenTrial": study.trials[-1],
    }
    if path in live:
        return live[path]
    module, _, cls = path.rpartition(".")
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("name", private.PRIVATE_NAMES)
def test_each_private_name_still_exists(name: str, beating: optuna.Study) -> None:
    owner, _, attribute = name.rpartition(".")
    assert hasattr(_owner(owner, beating), attribute), f"Optuna no longer has {name}"


def test_storage_of_and_trial_id(beating: optuna.Study) -> None:
    """``Study._storage``, ``Trial._trial_id``, ``FrozenTrial._trial_id``."""
    trial = beating.ask()
    assert isinstance(private.storage_of(beating), optuna.storages.BaseStorage)
    frozen = beating.trials[-1]
    assert private.trial_id(trial) == private.trial_id(frozen)
    assert isinstance(private.trial_id(trial), int)


def test_reload_and_write_attrs_by_id(beating: optuna.Study) -> None:
    """``Study._storage.get_trial/set_trial_*_attr`` by ``_trial_id``."""
    trial = beating.ask()
    frozen = beating.trials[-1]
    private.set_user_attr(beating, frozen, "reason", "because")
    private.set_system_attr(beating, trial, "hpo:beat", "host:1:1")
    again = private.reload_trial(beating, trial)
    assert again.number == trial.number
    assert again.user_attrs["reason"] == "because"
    assert again.system_attrs["hpo:beat"] == "host:1:1"


def test_mark_failed(beating: optuna.Study) -> None:
    beating.ask()
    frozen = beating.trials[-1]
    assert private.mark_failed(beating, frozen) is True
    assert private.reload_trial(beating, frozen).state == TrialState.FAIL


def test_heartbeat_helpers(beating: optuna.Study, sqlite_url: str) -> None:
    """``optuna.storages._heartbeat.is_heartbeat_enabled`` and ``BaseHeartbeat``'s methods."""
    storage = private.storage_of(beating)
    assert private.heartbeat_enabled(storage)
    assert private.heartbeat_interval(storage) == 1
    plain = open_storage(sqlite_url)
    assert not private.heartbeat_enabled(plain)
    assert private.heartbeat_interval(plain) is None


def test_stale_trials_after_the_grace_period(beating: optuna.Study) -> None:
    """``RDBStorage._get_stale_trial_ids`` and ``Study._study_id``."""
    trial = beating.ask()
    private.record_heartbeat(beating, trial)
    assert private.stale_trials(beating) == []
    time.sleep(2.5)  # the grace period is measured by the database's clock: let it pass
    assert [t.number for t in private.stale_trials(beating)] == [trial.number]


def test_proxy_service_and_client_on_hpo_built_channels(sqlite_url: str) -> None:
    """``OptunaStorageProxyService``, ``add_StorageServiceServicer_to_server``,
    ``GrpcStorageProxy._setup``, ``StorageServiceStub`` and ``GrpcClientCache``."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    private.add_proxy_service(server, open_storage(sqlite_url))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    opened: list[grpc.Channel] = []

    def channel() -> grpc.Channel:
        opened.append(grpc.insecure_channel(f"127.0.0.1:{port}"))
        return opened[-1]

    try:
        client = private.proxy_client("127.0.0.1", port, channel)
        assert isinstance(client, optuna.storages.GrpcStorageProxy)
        study = optuna.create_study(study_name="proxied", storage=client)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert len(opened) == 1  # the client's one channel is the one hpo built
        again = optuna.load_study(study_name="proxied", storage=sqlite_url)
        assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 2
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2  # the client's cache
    finally:
        for c in opened:
            c.close()
        server.stop(None)


def _every_kind_of_trial(study: optuna.Study) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import create_trial

    dists = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "units": IntDistribution(16, 256, step=16),
        "opt": CategoricalDistribution(("adam", None, True, 3)),
        "drop": FloatDistribution(0.0, 0.5, step=0.1),
    }
    base = {"lr": 1e-3, "units": 64, "drop": 0.2}
    for n, opt in enumerate(("adam", None, True, 3)):
        study.add_trial(
            create_trial(
                value=[0.5, float("inf"), float("-inf"), -2.0][n],
                params={**base, "opt": opt},
                distributions=dists,
                user_attrs={"f1_per_class": [0.1, 0.9], "nested": {"a": [1, None]}},
                system_attrs={"hpo:recipe": {"seed": n}},
                intermediate_values={0: 0.1, 1: float("nan"), 2: float("inf"), 5: -1.0},
            )
        )
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={0: 0.3}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "OOM"}))
    study.enqueue_trial({"lr": 0.01})
    running = study.ask({"lr": dists["lr"]})
    running.set_user_attr("worker", "host:1")


def _comparable(trial: Any) -> dict[str, Any]:
    """FrozenTrial's fields with NaN made equal to itself."""
    fields = dict(vars(trial))
    fields["intermediate_values"] = {
        k: ("nan" if v != v else v) for k, v in trial.intermediate_values.items()
    }
    return fields


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A local time zone 9 hours from UTC, where stored naive-UTC times must be converted."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url", "mysql_url"])
@pytest.mark.usefixtures("far_from_utc")
def test_read_trials_gives_what_optuna_reads(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    """The six-query read must give Optuna's own FrozenTrials, field by field."""
    url = str(request.getfixturevalue(url_fixture))
    study = optuna.create_study(study_name="fast", storage=url, direction="maximize")
    other = optuna.create_study(study_name="other", storage=url)
    other.add_trial(optuna.trial.create_trial(value=1.0))  # another study's rows stay out
    _every_kind_of_trial(study)
    loaded = optuna.load_study(study_name="fast", storage=url)
    assert private.sql_backend(loaded) is not None, "a URL-opened study must take the SQL path"
    fast = private.read_trials(loaded)
    slow = optuna.load_study(study_name="fast", storage=url).get_trials(deepcopy=False)
    assert [t.number for t in fast] == list(range(len(slow))) == [t.number for t in slow]
    for mine, theirs in zip(fast, slow, strict=True):
        assert _comparable(mine) == _comparable(theirs), f"trial {theirs.number} differs"


def test_read_trials_of_a_multi_objective_study(sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url, directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.9, 12.5]))
    study.add_trial(optuna.trial.create_trial(values=[0.7, float("inf")]))
    (first, second) = private.read_trials(study)
    assert (first.values, second.values) == ([0.9, 12.5], [0.7, float("inf")])


def test_read_trials_falls_back_to_optuna_off_sql(tmp_path: Any) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(storage=storage)
    study.add_trial(optuna.trial.create_trial(value=3.0))
    assert private.sql_backend(study) is None
    assert [t.value for t in private.read_trials(study)] == [3.0]
