"""``hpo studies``/``status``/``best`` data: the same facts as the report, direction-aware."""

from __future__ import annotations

import datetime as dt

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from hpo.errors import HpoError
from hpo.reports import load_study_data
from hpo.summary import best_summary, best_trial_or_none, list_studies, metric_label, study_status
from tests.reports.factories import CLASSES, build_study


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state == TrialState.COMPLETE]


def test_status_matches_the_report(sqlite_url: str) -> None:
    study = build_study(sqlite_url, "s1", n_trials=14, metric="accuracy")
    running = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params={},
        distributions={},
        user_attrs={keys.WORKER: "gpu0-w1", keys.DEVICE: "GPU:0"},
        intermediate_values={0: 0.4, 1: 0.55},
    )
    running.datetime_start = dt.datetime(2026, 1, 1, 13, 0)
    study.add_trial(running)
    info = study_status(study)
    report = load_study_data(sqlite_url, "s1")
    best = max(_complete(study), key=lambda t: t.value or 0.0)
    assert info["metric"] == "accuracy" and info["metric_label"] == "accuracy"
    assert report.metric_label == "accuracy"
    assert (
        info["states"]
        == report.states
        == {
            "COMPLETE": 10,
            "PRUNED": 2,
            "FAIL": 2,
            "RUNNING": 1,
        }
    )
    assert info["n_trials"] == report.n_trials == 15
    assert report.best is not None
    assert info["best_value"] == report.best.value == best.value
    assert info["best_trial"] == report.best.number == best.number
    assert info["best_params"] == best.params
    assert info["train_seconds"] == pytest.approx(report.train_seconds_total)
    assert info["train_seconds"] == pytest.approx(sum(10.0 + i for i in range(14)))
    assert info["running"] == [
        {
            "number": 14,
            "worker": "gpu0-w1",
            "device": "GPU:0",
            "epoch": 2,
            "last_f1": 0.55,
            "started": dt.datetime(2026, 1, 1, 13, 0),
        }
    ]
    assert info["pruner"] == "-"  # the factory's study file has no pruner section


def test_best_summary(sqlite_url: str) -> None:
    study = build_study(sqlite_url, "s1", n_trials=9)
    info = best_summary(study)
    best = max(_complete(study), key=lambda t: t.value or 0.0)
    assert info["metric_label"] == metric_label(study) == "macro F1"
    assert (info["number"], info["value"], info["params"]) == (best.number, best.value, best.params)
    assert info["params_full"] == best.params  # no params_full recorded: the searched ones
    assert info["metrics"] == {"macro_f1": best.value, "accuracy": best.value, "roc_auc": 0.9}
    # support is the validation split's class count (the factory writes i + 1)
    assert info["f1_per_class"] == [
        {"class": c, "f1": best.value, "support": i + 1} for i, c in enumerate(CLASSES)
    ]
    assert info["confusion_matrix"] == [[5, 1, 1], [1, 5, 1], [1, 1, 5]]
    assert info["epochs"] == 5


def test_minimizing_study_picks_the_lowest(sqlite_url: str) -> None:
    study = build_study(sqlite_url, "low", n_trials=9, direction="minimize")
    lowest = min(_complete(study), key=lambda t: t.value or 0.0)
    chosen = best_trial_or_none(study)
    assert chosen is not None and chosen.number == lowest.number
    assert best_summary(study)["value"] == lowest.value
    assert study_status(study)["best_trial"] == lowest.number
    (row,) = list_studies(optuna.storages.RDBStorage(sqlite_url))
    assert row["best_value"] == lowest.value


def test_list_studies(sqlite_url: str) -> None:
    build_study(sqlite_url, "b", n_trials=7, metric="weighted_f1")
    optuna.create_study(study_name="a", storage=sqlite_url)
    rows = list_studies(optuna.storages.RDBStorage(sqlite_url))
    assert [r["name"] for r in rows] == ["a", "b"]
    empty, built = rows
    assert (empty["complete"], empty["best_value"], empty["metric"]) == (0, None, "macro_f1")
    assert (built["complete"], built["pruned"], built["fail"]) == (5, 1, 1)
    assert built["metric"] == "weighted_f1" and built["backbone"] == "mobilenet_v2"
    assert (
        built["best_value"]
        == best_summary(optuna.load_study(study_name="b", storage=sqlite_url))["value"]
    )


def test_no_completed_trial(sqlite_url: str) -> None:
    study = optuna.create_study(study_name="empty", storage=sqlite_url)
    assert best_trial_or_none(study) is None
    assert study_status(study)["best_value"] is None
    assert metric_label(study) == "macro F1"  # not created by hpo: no study file stored
    with pytest.raises(HpoError, match="no completed trial"):
        best_summary(study)
