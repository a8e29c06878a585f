"""The facts summary and reports share: metric names, counts, best trial, seconds."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpo import keys
from hpo.facts import (
    BestTrial,
    best_record,
    label_of,
    objective_metric,
    state_counts,
    study_facts,
    train_seconds,
)


@pytest.mark.parametrize(
    ("config", "metric", "label"),
    [
        ({}, "macro_f1", "macro F1"),
        ({"objective": None}, "macro_f1", "macro F1"),
        ({"objective": {"metric": "weighted_f1"}}, "weighted_f1", "weighted F1"),
        ({"objective": {"metric": "balanced_accuracy"}}, "balanced_accuracy", "balanced accuracy"),
        ({"objective": {"metric": "new_metric"}}, "new_metric", "new metric"),
        # A benchmark study is scored by its problem.
        ({"objective": {"metric": "accuracy", "benchmark": "branin"}}, "branin", "branin"),
        ({"objective": {"benchmark": None, "metric": "accuracy"}}, "accuracy", "accuracy"),
    ],
)
def test_objective_metric_and_label(config: dict[str, object], metric: str, label: str) -> None:
    assert objective_metric(config) == metric
    assert label_of(metric) == label


def test_counts_best_and_seconds() -> None:
    trials = [
        create_trial(value=0.5, user_attrs={keys.TRAIN_SECONDS: 2.0}),
        create_trial(value=0.9, user_attrs={keys.TRAIN_SECONDS: 3, keys.EPOCHS: 4}),
        create_trial(value=0.9),  # a tie: the earlier trial stays best
        create_trial(state=TrialState.PRUNED, user_attrs={keys.TRAIN_SECONDS: True}),
        create_trial(state=TrialState.FAIL),
    ]
    for number, t in enumerate(trials):
        t.number = number
    assert state_counts(trials) == {"COMPLETE": 3, "PRUNED": 1, "FAIL": 1}
    assert train_seconds(trials) == [2.0, 3.0]
    best = best_record(trials, maximize=True)
    assert isinstance(best, BestTrial)
    assert (best.number, best.value, best.epochs, best.metrics) == (1, 0.9, 4, {})
    low = best_record(trials, maximize=False)
    assert low is not None and low.number == 0
    assert best_record(trials[3:], maximize=True) is None


def test_study_facts_reads_the_stored_study_file() -> None:
    study = optuna.create_study(direction="minimize")
    study.set_user_attr(keys.STUDY_CONFIG, {"objective": {"metric": "accuracy"}})
    study.add_trial(create_trial(value=0.4, params={}, distributions={}))
    study.add_trial(create_trial(value=0.2, params={}, distributions={}))
    facts = study_facts(study)
    assert (facts.metric, facts.metric_label, facts.maximize) == ("accuracy", "accuracy", False)
    assert facts.best is not None and (facts.best.number, facts.best.value) == (1, 0.2)
    assert facts.states == {"COMPLETE": 2}


def test_best_trial_record_carries_every_stored_fact() -> None:
    ua = {
        keys.METRICS: {"macro_f1": 0.8, "roc_auc": 0.9},
        keys.F1_PER_CLASS: [0.7, 0.9],
        keys.CONFUSION: [[3, 1], [0, 4]],
        keys.ROC_CURVES: [{"fpr": [0, 1], "tpr": [0, 1], "auc": 0.5}],
        keys.EPOCHS: 6,
        keys.TRAIN_SECONDS: 41.5,
        keys.PARAMS_FULL: {"dropout": 0.1, "batch_size": 16},
    }
    trial = create_trial(
        value=0.8,
        params={"dropout": 0.1},
        distributions={"dropout": optuna.distributions.FloatDistribution(0.0, 0.5)},
        user_attrs=ua,
    )
    trial.number = 7
    best = BestTrial.of(trial)
    assert best == BestTrial(
        number=7,
        value=0.8,
        params={"dropout": 0.1},
        metrics={"macro_f1": 0.8, "roc_auc": 0.9},
        f1_per_class=[0.7, 0.9],
        confusion=[[3, 1], [0, 4]],
        roc_curves=[{"fpr": [0, 1], "tpr": [0, 1], "auc": 0.5}],
        epochs=6,
        train_seconds=41.5,
        params_full={"dropout": 0.1, "batch_size": 16},
    )
    bare = create_trial(value=0.1)
    bare.number = 0
    assert BestTrial.of(bare) == BestTrial(0, 0.1, {}, {}, [], None, [], None, None, None)


def test_study_facts_names_the_study_and_keeps_every_trial() -> None:
    study = optuna.create_study(study_name="named", direction="maximize")
    study.add_trial(create_trial(value=0.4))
    study.add_trial(create_trial(state=TrialState.FAIL))
    facts = study_facts(study)
    assert facts.name == "named" and [t.number for t in facts.trials] == [0, 1]
    assert facts.config == {} and facts.metric == "macro_f1" and facts.maximize
