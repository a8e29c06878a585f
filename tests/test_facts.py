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
