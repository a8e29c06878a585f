"""Plain data for reports, read from storage alone (no drawing here).

Like Optuna's ``_get_*_info`` functions, these return small immutable
records that tests check as data; ``_figures`` turns them into plots. The
facts ``hpo status`` and ``hpo best`` also show (states, best trial, training
time, objective metric) are read through ``hpo.facts``, so both agree.
Campaigns are read in ``_campaign``, the bounded data of large studies'
figures in ``_bounded``.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import keys
from hpo.facts import (
    DEFAULT_METRIC,
    BestTrial,
    label_of,
    study_facts,
)

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


@dataclass(frozen=True)
class StudyData:
    name: str
    direction: str
    n_trials: int
    states: dict[str, int]
    best: BestTrial | None
    class_names: list[str]
    dataset: dict[str, Any]
    versions: dict[str, str]
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    config: dict[str, Any]
    test_used: list[dict[str, Any]]
    train_seconds_total: float
    train_seconds_median: float | None
    wall_seconds: float | None
    trials: list[FrozenTrial] = field(repr=False)
    failures: list[tuple[int, str]] = field(default_factory=list)
    overhead_seconds_median: float | None = None  # per trial, outside Keras' fit and predict
    metric: str = DEFAULT_METRIC  # objective.metric of the study file
    machine: dict[str, Any] = field(default_factory=dict)  # CPU and threads of the creating host

    @property
    def metric_label(self) -> str:
        return label_of(self.metric)

    @property
    def completed(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == TrialState.COMPLETE and t.value is not None]


def _median_attr(trials: list[FrozenTrial], key: str) -> float | None:
    values = [
        float(v)
        for t in trials
        if isinstance(v := t.user_attrs.get(key), (int, float)) and not isinstance(v, bool)
    ]
    return statistics.median(values) if values else None


def _in_memory(trials: list[FrozenTrial], direction: Any, name: str) -> optuna.Study:
    """A copy of the study in memory: optuna's plots re-read trials many times.

    Without the trials' attributes (metrics, curves, timings), which no plot
    reads and which the in-memory storage would deep-copy trial by trial.
    """
    study = optuna.create_study(
        direction=direction, study_name=name, storage=optuna.storages.InMemoryStorage()
    )
    study.add_trials(_bare(t) for t in trials if t.state != TrialState.RUNNING or t.params)
    return study


def _bare(t: FrozenTrial) -> FrozenTrial:
    return FrozenTrial(
        number=t.number,
        state=t.state,
        value=None,
        values=t.values,
        datetime_start=t.datetime_start,
        datetime_complete=t.datetime_complete,
        params=t.params,
        distributions=t.distributions,
        user_attrs={},
        system_attrs={},
        intermediate_values=t.intermediate_values,
        trial_id=t._trial_id,
    )


def load_study_data(storage: str | BaseStorage, study_name: str) -> StudyData:
    study = optuna.load_study(study_name=study_name, storage=storage)
    facts = study_facts(study)
    trials, best = facts.trials, facts.best
    ua = study.user_attrs
    dataset = ua.get(keys.STUDY_FINGERPRINT) or {}
    class_names = list(dataset.get("class_names") or [])
    if not class_names and best is not None and best.f1_per_class:
        class_names = [str(i) for i in range(len(best.f1_per_class))]
    seconds = facts.train_seconds
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    failures = [
        (t.number, str(t.user_attrs.get(keys.FAIL_REASON, "no reason recorded")))
        for t in trials
        if t.state == TrialState.FAIL
    ]
    return StudyData(
        name=study.study_name,
        direction="maximize" if facts.maximize else "minimize",
        n_trials=len(trials),
        states=facts.states,
        best=best,
        class_names=class_names,
        dataset=dataset,
        versions=dict(ua.get(keys.STUDY_VERSIONS) or {}),
        sampler=dict(ua.get(keys.STUDY_SAMPLER) or {}),
        pruner=dict(ua.get(keys.STUDY_PRUNER) or {}),
        config=facts.config,
        test_used=[u for u in ua.get(keys.STUDY_TEST_USED) or [] if isinstance(u, dict)],
        train_seconds_total=float(sum(seconds)),
        train_seconds_median=statistics.median(seconds) if seconds else None,
        wall_seconds=wall,
        trials=trials,
        failures=failures,
        overhead_seconds_median=_median_attr(trials, keys.OVERHEAD_SECONDS),
        metric=facts.metric,
        machine=dict(ua.get(keys.STUDY_MACHINE) or {}),
    )


def importances(data: StudyData) -> dict[str, float]:
    """Parameter importances with PED-ANOVA, on at most ``IMPORTANCE_TRIALS`` complete
    trials spread evenly over the study (PED-ANOVA took 1.3 s at 10,000, 0.03 s at 3,000)."""
    from hpo.reports._bounded import IMPORTANCE_TRIALS, evenly

    complete = data.completed
    if len(complete) < 3 or not complete[0].params:
        return {}
    study = _in_memory(evenly(complete, IMPORTANCE_TRIALS), data.direction, data.name)
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


@dataclass(frozen=True)
class TimelineBar:
    number: int
    worker: str
    start: dt.datetime
    end: dt.datetime
    state: str
    value: float | None


def timeline(data: StudyData, limit: int | None = None) -> list[TimelineBar]:
    """One bar per started trial; past ``limit`` (default ``MAX_POINTS``) a thinned set."""
    from hpo.reports._bounded import MAX_POINTS, thin

    now = dt.datetime.now()
    bars = []
    started = [t for t in data.trials if t.datetime_start is not None]
    for t in thin(started, limit or MAX_POINTS, maximize=data.direction == "maximize"):
        if t.datetime_start is None:
            continue
        worker = str(t.user_attrs.get(keys.WORKER) or "unknown")
        device = t.user_attrs.get(keys.DEVICE)
        label = f"{worker} ({device})" if device else worker
        bars.append(
            TimelineBar(
                t.number, label, t.datetime_start, t.datetime_complete or now, t.state.name, t.value
            )
        )
    return bars
