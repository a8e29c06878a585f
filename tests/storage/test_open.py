"""Opening the storage: Optuna-compatible, heartbeats configured when opened."""

from __future__ import annotations

import optuna
import pytest

from hpo.errors import StorageError
from hpo.storage import heartbeat_settings, open_storage


def test_unreachable_database_hides_password() -> None:
    with pytest.raises(StorageError) as info:
        open_storage("postgresql://hpo:topsecret@127.0.0.1:1/hpo")
    assert "cannot reach" in str(info.value)
    assert "topsecret" not in str(info.value)


def test_storage_is_optuna_compatible(storage_url: str) -> None:
    storage = open_storage(storage_url, heartbeat=True)
    study = optuna.create_study(study_name="compat", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=2)
    # Plain Optuna, opening the URL itself, reads back what hpo's storage wrote.
    again = optuna.load_study(study_name="compat", storage=storage_url)
    assert [(t.number, t.state, t.params, t.value) for t in again.trials] == [
        (t.number, t.state, t.params, t.value) for t in study.trials
    ]
    assert all(t.value == t.params["x"] ** 2 for t in again.trials)
    assert again.direction == optuna.study.StudyDirection.MAXIMIZE


def test_heartbeat_settings_are_read_when_opening(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPO_HEARTBEAT_INTERVAL", "7")
    monkeypatch.setenv("HPO_GRACE_PERIOD", "21")
    assert (heartbeat_settings().interval, heartbeat_settings().grace_period) == (7, 21)
    storage = open_storage(sqlite_url, heartbeat=True)
    assert storage.get_heartbeat_interval() == 7  # type: ignore[attr-defined]
    assert open_storage(sqlite_url).get_heartbeat_interval() is None  # type: ignore[attr-defined]


def test_workers_opening_an_empty_database_together_all_succeed(postgres_url: str) -> None:
    # Several hosts starting on a fresh database race to create Optuna's schema.
    import threading

    from hpo.storage import open_storage

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def opener() -> None:
        barrier.wait()
        try:
            open_storage(postgres_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # The schema the racers built is whole: a study can be created and used on it.
    study = optuna.create_study(study_name="after-race", storage=open_storage(postgres_url))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert optuna.load_study(study_name="after-race", storage=postgres_url).trials[0].value == (
        study.trials[0].params["x"]
    )
