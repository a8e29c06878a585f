"""Plain data for reports, read from storage alone (no drawing here).

Like Optuna's ``_get_*_info`` functions, these return small immutable
records that tests check as data; ``_figures`` turns them into plots. The
facts ``hpo status`` and ``hpo best`` also show (states, best trial, training
time, objective metric) are read through ``hpo.facts``, so both agree.
Studies and campaigns share this module (about 400 lines) because a campaign
is read as a set of studies; split it at "campaigns" if either grows.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import keys
from hpo.facts import (
    DEFAULT_METRIC,
    BestTrial,
    config_of,
    label_of,
    objective_metric,
    study_facts,
)
from hpo.results import FINISHED, is_maximize

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
    """A copy of the study in memory: optuna's plots re-read trials many times."""
    study = optuna.create_study(
        direction=direction, study_name=name, storage=optuna.storages.InMemoryStorage()
    )
    study.add_trials(t for t in trials if t.state != TrialState.RUNNING or t.params)
    return study


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
    )


def importances(data: StudyData) -> dict[str, float]:
    """Parameter importances with PED-ANOVA: fast at thousands of trials."""
    study = _in_memory(data.trials, data.direction, data.name)
    if len(data.completed) < 3 or not data.completed[0].params:
        return {}
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


def timeline(data: StudyData) -> list[TimelineBar]:
    now = dt.datetime.now()
    bars = []
    for t in data.trials:
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


# --------------------------------------------------------------------------
# campaigns


@dataclass(frozen=True)
class CampaignRun:
    study_name: str
    sampler: str
    repeat: int
    best_by_trial: list[float]  # best-so-far after each finished trial (NaN before any)
    best_by_time: list[tuple[float, float]]  # (seconds since start, best so far)
    final_best: float | None
    suggest_seconds: list[float]


@dataclass(frozen=True)
class PairTest:
    a: str
    b: str
    u: float
    p_value: float
    median_a: float
    median_b: float
    significant: bool


@dataclass(frozen=True)
class SamplerSummary:
    sampler: str
    repeats: int
    final_median: float | None
    final_values: list[float]
    trials_to_target_median: float | None
    reached: int
    suggest_median: float | None


@dataclass(frozen=True)
class CampaignData:
    campaign: str
    runs: list[CampaignRun]
    samplers: list[str]
    target: float | None
    target_fraction: float
    summaries: dict[str, SamplerSummary]
    tests: list[PairTest]
    verdict: list[str]
    alpha: float = 0.05
    metric_label: str = label_of(DEFAULT_METRIC)  # the members' objective.metric


def list_campaigns(storage: str | BaseStorage) -> list[str]:
    names = {
        str(s.user_attrs[keys.STUDY_CAMPAIGN])
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if keys.STUDY_CAMPAIGN in s.user_attrs
    }
    return sorted(names)


def _run_of(study: optuna.Study, sampler: str, repeat: int) -> CampaignRun:
    trials = sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number)
    maximize = is_maximize(study)
    best = math.nan
    by_trial: list[float] = []
    by_time: list[tuple[float, float]] = []
    starts = [t.datetime_start for t in trials if t.datetime_start]
    t0 = min(starts) if starts else None
    for t in trials:
        if t.state == TrialState.COMPLETE and t.value is not None:
            v = float(t.value)
            best = v if math.isnan(best) else (max(best, v) if maximize else min(best, v))
        by_trial.append(best)
    running_best = math.nan
    for t in sorted(trials, key=lambda t: t.datetime_complete or dt.datetime.max):
        if t.state == TrialState.COMPLETE and t.value is not None:
            v = float(t.value)
            running_best = (
                v
                if math.isnan(running_best)
                else (max(running_best, v) if maximize else min(running_best, v))
            )
        if t0 is not None and t.datetime_complete is not None and not math.isnan(running_best):
            by_time.append(((t.datetime_complete - t0).total_seconds(), running_best))
    suggest = [
        float(t.user_attrs[keys.SUGGEST_SECONDS])
        for t in trials
        if isinstance(t.user_attrs.get(keys.SUGGEST_SECONDS), (int, float))
    ]
    return CampaignRun(
        study.study_name,
        sampler,
        repeat,
        by_trial,
        by_time,
        None if math.isnan(best) else best,
        suggest,
    )


def mean_interval(curves: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Mean and 95 % t-interval at each index over curves (NaN-aware, ragged)."""
    from scipy import stats

    length = max((len(c) for c in curves), default=0)
    mean, low, high = [], [], []
    for i in range(length):
        vals = np.array([c[i] if i < len(c) else c[-1] for c in curves if c], dtype=float)
        vals = vals[~np.isnan(vals)]
        if len(vals) == 0:
            mean.append(math.nan)
            low.append(math.nan)
            high.append(math.nan)
            continue
        m = float(vals.mean())
        if len(vals) > 1:
            t975 = float(stats.t.ppf(0.975, len(vals) - 1))
            half = t975 * float(vals.std(ddof=1)) / math.sqrt(len(vals))
        else:
            half = 0.0
        mean.append(m)
        low.append(m - half)
        high.append(m + half)
    return mean, low, high


def load_campaign_data(
    storage: str | BaseStorage, campaign: str, *, target_fraction: float = 0.95, alpha: float = 0.05
) -> CampaignData:
    from scipy.stats import mannwhitneyu

    summaries_ = [
        s
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if s.user_attrs.get(keys.STUDY_CAMPAIGN) == campaign
    ]
    runs: list[CampaignRun] = []
    maximize = True
    metrics: set[str] = set()
    for s in sorted(summaries_, key=lambda s: s.study_name):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        maximize = is_maximize(study)
        metrics.add(objective_metric(config_of(study)))
        sampler = str((s.user_attrs.get(keys.STUDY_SAMPLER) or {}).get("name", "unknown"))
        repeat = int(s.user_attrs.get(keys.STUDY_REPEAT, 0))
        runs.append(_run_of(study, sampler, repeat))
    samplers = sorted({r.sampler for r in runs})
    finals = [r.final_best for r in runs if r.final_best is not None]
    overall = (max(finals) if maximize else min(finals)) if finals else None
    target = overall * target_fraction if overall is not None else None
    summaries: dict[str, SamplerSummary] = {}
    for name in samplers:
        mine = [r for r in runs if r.sampler == name]
        values = [r.final_best for r in mine if r.final_best is not None]
        hits: list[int] = []
        for r in mine:
            if target is None:
                continue
            for i, v in enumerate(r.best_by_trial):
                if not math.isnan(v) and (v >= target if maximize else v <= target):
                    hits.append(i + 1)
                    break
        suggest = [s for r in mine for s in r.suggest_seconds]
        summaries[name] = SamplerSummary(
            sampler=name,
            repeats=len(mine),
            final_median=statistics.median(values) if values else None,
            final_values=values,
            trials_to_target_median=statistics.median(hits) if hits else None,
            reached=len(hits),
            suggest_median=statistics.median(suggest) if suggest else None,
        )
    tests: list[PairTest] = []
    for i, a in enumerate(samplers):
        for b in samplers[i + 1 :]:
            va, vb = summaries[a].final_values, summaries[b].final_values
            if len(va) < 2 or len(vb) < 2:
                continue
            if len(set(va) | set(vb)) == 1:
                u, p = float(len(va) * len(vb) / 2), 1.0
            else:
                res = mannwhitneyu(va, vb, alternative="two-sided")
                u, p = float(res.statistic), float(res.pvalue)
            tests.append(
                PairTest(a, b, u, p, statistics.median(va), statistics.median(vb), p < alpha)
            )
    # One study file makes a campaign, so one metric; say so if members were edited apart.
    label = (
        "objective value" if len(metrics) > 1 else label_of(min(metrics, default=DEFAULT_METRIC))
    )
    verdict = _verdict(summaries, tests, alpha, maximize, label)
    return CampaignData(
        campaign, runs, samplers, target, target_fraction, summaries, tests, verdict, alpha, label
    )


def _verdict(
    summaries: dict[str, SamplerSummary],
    tests: list[PairTest],
    alpha: float,
    maximize: bool,
    label: str = label_of(DEFAULT_METRIC),
) -> list[str]:
    lines: list[str] = []
    if not summaries:
        return ["This campaign has no finished studies yet."]
    ranked = sorted(
        (s for s in summaries.values() if s.final_median is not None),
        key=lambda s: float(s.final_median or 0.0) * (1 if maximize else -1),
        reverse=True,
    )
    if ranked:
        lines.append(
            f"Median final best {label}: "
            + ", ".join(f"{s.sampler} {s.final_median:.4f}" for s in ranked)
            + "."
        )
    if not tests:
        lines.append("Too few repeats per sampler for a statistical comparison (need 2 or more).")
        return lines
    for t in tests:
        better, worse = (t.a, t.b) if (t.median_a >= t.median_b) == maximize else (t.b, t.a)
        if t.significant:
            lines.append(
                f"{better} beat {worse} (Mann-Whitney U = {t.u:g}, p = {t.p_value:.3g} < {alpha})."
            )
        else:
            lines.append(
                f"{t.a} vs {t.b}: no significant difference (Mann-Whitney U = {t.u:g}, "
                f"p = {t.p_value:.3g} >= {alpha}); the medians differ by "
                f"{abs(t.median_a - t.median_b):.4f}, which these repeats cannot tell from noise."
            )
    n_min = min(s.repeats for s in summaries.values())
    if n_min <= 3:
        lines.append(
            f"With {n_min} repeat(s) per sampler a two-sided Mann-Whitney test cannot reach "
            f"p < {alpha} even when every run of one sampler beats every run of another "
            "(the smallest possible p with 3 and 3 is 0.1): run more repeats before concluding."
        )
    return lines
