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
    assert [empty[k] for k in ("pruned", "fail", "running", "waiting")] == [0, 0, 0, 0]
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


def test_best_value_is_the_trials_value_not_another_metric(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every view reports the best trial's value; its ROC AUC (or accuracy) would point
    at another trial with another number."""
    import json

    from tests.helpers import run_cli

    study = optuna.create_study(study_name="m", storage=sqlite_url, direction="maximize")
    study.set_user_attr(keys.STUDY_CONFIG, {"objective": {"metric": "macro_f1"}})
    #             value  roc_auc accuracy
    rows = [(0.61, 0.99, 0.91), (0.83, 0.70, 0.64), (0.72, 0.95, 0.97), (0.55, 0.60, 0.52)]
    for value, auc, acc in rows:
        metrics = {"macro_f1": value, "roc_auc": auc, "accuracy": acc}
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={keys.METRICS: metrics}))
    why = "must be trial 1's value 0.83, not a metric of it or the best trial by another metric"
    status = study_status(study)
    assert (status["best_trial"], status["best_value"]) == (1, 0.83), why
    best = best_summary(study)
    assert (best["number"], best["value"]) == (1, 0.83), why
    assert best["metrics"] == {"macro_f1": 0.83, "roc_auc": 0.70, "accuracy": 0.64}
    (row,) = list_studies(optuna.storages.RDBStorage(sqlite_url))
    assert row["best_value"] == 0.83, why

    code, out, _ = run_cli(capsys, "best", "m", "--storage", sqlite_url, "--json")
    assert code == 0 and (json.loads(out)["number"], json.loads(out)["value"]) == (1, 0.83), why
    code, out, _ = run_cli(capsys, "status", "m", "--storage", sqlite_url, "--json")
    shown = json.loads(out)
    assert code == 0 and (shown["best_trial"], shown["best_value"]) == (1, 0.83), why
    code, out, _ = run_cli(capsys, "best", "m", "--storage", sqlite_url)
    assert code == 0 and "best trial 1: macro F1 0.8300" in out, out


def _every_state_study(url: str) -> optuna.Study:
    """Two of each state but RUNNING (one) and WAITING (three), with hpo's study attrs."""
    study = optuna.create_study(study_name="every", storage=url, direction="maximize")
    study.set_user_attr(
        keys.STUDY_CONFIG,
        {
            "sampler": {"name": "gpyopt"},
            "pruner": {"name": "median"},
            "model": {"backbone": "resnet50"},
            "objective": {"metric": "balanced_accuracy"},
        },
    )
    study.set_user_attr(keys.STUDY_FINGERPRINT, {"sha256": "cd" * 32, "class_names": ["a"]})
    study.set_user_attr(keys.STUDY_TEST_USED, [{"trial": 0, "out": "/m"}])
    study.set_user_attr(keys.STUDY_EXECUTOR, {"engine": "slurm", "job_id": "42"})
    for value in (0.4, 0.6):
        study.add_trial(optuna.trial.create_trial(value=value))
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED))
    for k in range(2):
        reasons = {keys.FAIL_REASON: "out of memory: OOM"} if k else {}
        study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=reasons))
    study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING))
    for _ in range(3):
        study.enqueue_trial({})
    return study


def test_every_count_and_attribute_in_studies_and_status(sqlite_url: str) -> None:
    study = _every_state_study(sqlite_url)
    (row,) = list_studies(optuna.storages.RDBStorage(sqlite_url))
    counts = {k: row[k] for k in ("complete", "pruned", "fail", "running", "waiting")}
    assert counts == {"complete": 2, "pruned": 2, "fail": 2, "running": 1, "waiting": 3}
    assert (row["name"], row["best_value"], row["metric"]) == ("every", 0.6, "balanced_accuracy")
    assert (row["sampler"], row["backbone"]) == ("gpyopt", "resnet50")
    assert row["created"] == study.trials[0].datetime_start.isoformat()  # type: ignore[union-attr]

    info = study_status(study)
    assert info["name"] == "every" and info["n_trials"] == 10
    assert (info["sampler"], info["pruner"]) == ("gpyopt", "median")
    assert info["dataset"] == {"sha256": "cd" * 32, "class_names": ["a"]}
    assert info["test_used"] == [{"trial": 0, "out": "/m"}]
    assert info["executor"] == {"engine": "slurm", "job_id": "42"}
    assert info["running"][0]["epoch"] is None and info["running"][0]["last_f1"] is None
    failed = [(f["number"], f["reason"]) for f in info["failed"]]
    assert failed == [(4, "no reason stored"), (5, "out of memory: OOM")]
    assert info["failed"][1]["finished"] == study.trials[5].datetime_complete


def test_failed_trials_shows_the_last_few_oldest_first(sqlite_url: str) -> None:
    from hpo.summary import failed_trials

    study = optuna.create_study(storage=sqlite_url)
    for k in range(7):
        study.add_trial(
            optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={keys.FAIL_REASON: f"r{k}"})
        )
    study.add_trial(optuna.trial.create_trial(value=1.0))
    shown = failed_trials(study.trials)
    assert [(f["number"], f["reason"]) for f in shown] == [(k, f"r{k}") for k in range(2, 7)]
    assert [f["number"] for f in failed_trials(study.trials, last=2)] == [5, 6]


def test_best_summary_names_classes_and_uses_the_full_parameters(sqlite_url: str) -> None:
    study = optuna.create_study(study_name="full", storage=sqlite_url, direction="maximize")
    study.set_user_attr(keys.STUDY_CONFIG, {"objective": {"metric": "weighted_f1"}})
    # Only two of three classes are named (an older study): the third is shown by index.
    study.set_user_attr(
        keys.STUDY_FINGERPRINT,
        {"class_names": ["a", "b"], "split_counts": {"val": {"a": 4, "b": 6}}},
    )
    full = {"learning_rate": 0.01, "batch_size": 32, "optimizer": "adam"}
    study.add_trial(
        optuna.trial.create_trial(
            params={"learning_rate": 0.01},
            distributions={"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1.0)},
            value=0.7,
            user_attrs={
                keys.PARAMS_FULL: full,
                keys.F1_PER_CLASS: [0.5, 0.75, 0.25],
                keys.TRAIN_SECONDS: 12.5,
                keys.EPOCHS: 3,
            },
        )
    )
    info = best_summary(study)
    assert (info["study"], info["metric"], info["metric_label"]) == (
        "full",
        "weighted_f1",
        "weighted F1",
    )
    assert info["params"] == {"learning_rate": 0.01} and info["params_full"] == full
    assert info["f1_per_class"] == [
        {"class": "a", "f1": 0.5, "support": 4},
        {"class": "b", "f1": 0.75, "support": 6},
        {"class": "2", "f1": 0.25, "support": None},
    ]
    assert (info["train_seconds"], info["epochs"], info["confusion_matrix"]) == (12.5, 3, None)


def test_states_that_do_not_occur_count_zero_and_unknowns_show_a_dash(sqlite_url: str) -> None:
    study = optuna.create_study(study_name="plain", storage=sqlite_url, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    running = optuna.trial.create_trial(
        state=TrialState.RUNNING, intermediate_values={0: 0.2, 1: 0.3, 2: 0.45}
    )
    study.add_trial(running)
    (row,) = list_studies(optuna.storages.RDBStorage(sqlite_url))
    counts = {k: row[k] for k in ("complete", "pruned", "fail", "running", "waiting")}
    assert counts == {"complete": 1, "pruned": 0, "fail": 0, "running": 1, "waiting": 0}
    info = study_status(study)
    assert (info["sampler"], info["pruner"]) == ("-", "-")  # not created by hpo
    (shown,) = info["running"]
    assert (shown["epoch"], shown["last_f1"]) == (3, 0.45), "the last of three epochs"
