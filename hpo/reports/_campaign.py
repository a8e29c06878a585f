"""Plain data for campaign reports: one record per study, statistics per sampler.

Like ``_extract`` for studies, nothing here draws. Besides best-so-far
curves and pairwise tests (Mann-Whitney U, Holm-adjusted across pairs), a
campaign says when it cannot compare anything: every sampler still in its
random start-up phase draws the same trials from the same seed. When the
studies store their problem's known optimum (benchmark objectives), regret
is normalized as in Bayesmark: 0 at the optimum, 1 at random search's median.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo import keys
from hpo.campaign import startup_trials
from hpo.facts import DEFAULT_METRIC, config_of, label_of, objective_metric
from hpo.reports._stats import bootstrap_mean, holm
from hpo.results import FINISHED, is_maximize

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

REGRET_BUDGETS = (25, 50, 100)


@dataclass(frozen=True)
class CampaignRun:
    study_name: str
    sampler: str
    repeat: int
    best_by_trial: list[float]  # best-so-far after each finished trial (NaN before any)
    best_by_time: list[tuple[float, float]]  # (seconds since start, best so far)
    final_best: float | None
    suggest_seconds: list[float]
    values: list[float | None] = field(default_factory=list)  # each finished trial's value
    startup: int = 0  # random trials the sampler starts with
    optimum: float | None = None  # the problem's known optimum, if stored


@dataclass(frozen=True)
class PairTest:
    a: str
    b: str
    u: float
    p_value: float
    median_a: float
    median_b: float
    significant: bool  # on the Holm-adjusted p-value
    p_adjusted: float = math.nan


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
class RegretPoint:
    """Normalized regret of one sampler at one budget: mean over repeats, 95 % bootstrap."""

    sampler: str
    budget: int
    mean: float
    low: float
    high: float
    values: list[float]  # one per repeat


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
    startup_warning: str | None = None  # set when no comparison is possible
    optimum: float | None = None
    regret: list[RegretPoint] = field(default_factory=list)
    regret_normalized: bool = False  # False: raw regret (no random sampler to scale by)
    regret_note: str | None = None


def list_campaigns(storage: str | BaseStorage) -> list[str]:
    names = {
        str(s.user_attrs[keys.STUDY_CAMPAIGN])
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if keys.STUDY_CAMPAIGN in s.user_attrs
    }
    return sorted(names)


def _running_best(values: list[float], maximize: bool) -> float:
    return max(values) if maximize else min(values)


def _run_of(study: optuna.Study, sampler: dict[str, object], repeat: int) -> CampaignRun:
    trials = sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number)
    maximize = is_maximize(study)
    best = math.nan
    by_trial: list[float] = []
    by_time: list[tuple[float, float]] = []
    values: list[float | None] = []
    starts = [t.datetime_start for t in trials if t.datetime_start]
    t0 = min(starts) if starts else None
    for t in trials:
        value = float(t.value) if t.state == TrialState.COMPLETE and t.value is not None else None
        values.append(value)
        if value is not None:
            best = value if math.isnan(best) else _running_best([best, value], maximize)
        by_trial.append(best)
    running = math.nan
    for t in sorted(trials, key=lambda t: t.datetime_complete or dt.datetime.max):
        if t.state == TrialState.COMPLETE and t.value is not None:
            v = float(t.value)
            running = v if math.isnan(running) else _running_best([running, v], maximize)
        if t0 is not None and t.datetime_complete is not None and not math.isnan(running):
            by_time.append(((t.datetime_complete - t0).total_seconds(), running))
    suggest = [
        float(t.user_attrs[keys.SUGGEST_SECONDS])
        for t in trials
        if isinstance(t.user_attrs.get(keys.SUGGEST_SECONDS), (int, float))
    ]
    optimum = study.user_attrs.get(keys.STUDY_OPTIMUM)
    return CampaignRun(
        study.study_name,
        str(sampler.get("name", "unknown")),
        repeat,
        by_trial,
        by_time,
        None if math.isnan(best) else best,
        suggest,
        values,
        startup_trials(sampler),
        float(optimum) if isinstance(optimum, (int, float)) and math.isfinite(optimum) else None,
    )


def startup_only(runs: list[CampaignRun]) -> str | None:
    """Why no comparison is possible, or None when the samplers' models took part.

    Checked per repeat: if in every repeat all samplers' trial values are the
    same, or no study ran past the largest start-up phase, every sampler drew
    the same random trials.
    """
    if len({r.sampler for r in runs}) < 2:
        return None
    largest = max(r.startup for r in runs)
    longest = max(len(r.values) for r in runs)
    by_repeat: dict[int, list[CampaignRun]] = {}
    for r in runs:
        by_repeat.setdefault(r.repeat, []).append(r)
    identical = all(
        len({tuple(r.values) for r in group}) == 1 for group in by_repeat.values() if len(group) > 1
    )
    head = "All samplers were still in their random start-up phase; no comparison is possible: "
    if longest <= largest:
        return head + f"run more than {largest} trials (the longest study has {longest})."
    if identical:
        return head + (
            "every sampler's trial values are identical in every repeat; run more trials "
            "than the samplers' random start-up" + (f" ({largest})." if largest else ".")
        )
    return None


def _regret(
    runs: list[CampaignRun], samplers: list[str], maximize: bool
) -> tuple[list[RegretPoint], bool, str | None]:
    """Regret to the known optimum at fixed budgets, normalized by random search's median."""
    optimum = runs[0].optimum
    assert optimum is not None
    common = min(len(r.best_by_trial) for r in runs)
    if common < 1:
        return [], False, None
    budgets = [b for b in REGRET_BUDGETS if b <= common]
    if not budgets or (common < REGRET_BUDGETS[-1] and common > budgets[-1]):
        budgets.append(common)
    sign = -1.0 if maximize else 1.0

    def gap(run: CampaignRun, budget: int) -> float:
        value = sign * (run.best_by_trial[budget - 1] - optimum)
        return math.nan if math.isnan(value) else max(0.0, value)  # NaN: nothing complete yet

    def finite(name: str, budget: int) -> list[float]:
        gaps = [gap(r, budget) for r in runs if r.sampler == name]
        return [g for g in gaps if not math.isnan(g)]

    scales = {b: statistics.median(finite("random", b) or [0.0]) for b in budgets}
    normalized, note = True, None
    if "random" not in samplers:
        normalized, note = (
            False,
            (
                "No random-search studies in this campaign: regret is shown unnormalized "
                "(distance to the optimum); add random to the samplers to normalize it."
            ),
        )
    elif not all(v > 0 for v in scales.values()):
        normalized, note = (
            False,
            (
                "Random search's median regret is 0 at some budget (it reached the optimum): "
                "regret is shown unnormalized."
            ),
        )
    points: list[RegretPoint] = []
    for budget in budgets:
        scale = scales[budget] if normalized else 1.0
        for name in samplers:
            scaled = [g / scale for g in finite(name, budget)]
            if scaled:
                mean, low, high = bootstrap_mean(scaled, seed=budget)
                points.append(RegretPoint(name, budget, mean, low, high, scaled))
    return points, normalized, note


def pairwise_tests(summaries: dict[str, SamplerSummary], alpha: float) -> list[PairTest]:
    """Two-sided Mann-Whitney U on final best values for every pair of samplers,
    significant when the Holm-adjusted p-value is below ``alpha``."""
    from scipy.stats import mannwhitneyu

    names = sorted(summaries)
    raw: list[tuple[str, str, float, float]] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            va, vb = summaries[a].final_values, summaries[b].final_values
            if len(va) < 2 or len(vb) < 2:
                continue
            if len(set(va) | set(vb)) == 1:
                u, p = float(len(va) * len(vb) / 2), 1.0
            else:
                res = mannwhitneyu(va, vb, alternative="two-sided")
                u, p = float(res.statistic), float(res.pvalue)
            raw.append((a, b, u, p))
    adjusted = holm([p for *_, p in raw])
    return [
        PairTest(
            a,
            b,
            u,
            p,
            statistics.median(summaries[a].final_values),
            statistics.median(summaries[b].final_values),
            q < alpha,
            q,
        )
        for (a, b, u, p), q in zip(raw, adjusted, strict=True)
    ]


def load_campaign_data(
    storage: str | BaseStorage, campaign: str, *, target_fraction: float = 0.95, alpha: float = 0.05
) -> CampaignData:
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
        sampler = dict(s.user_attrs.get(keys.STUDY_SAMPLER) or {})
        repeat = int(s.user_attrs.get(keys.STUDY_REPEAT, 0))
        runs.append(_run_of(study, sampler, repeat))
    samplers = sorted({r.sampler for r in runs})
    finals = [r.final_best for r in runs if r.final_best is not None]
    overall = _running_best(finals, maximize) if finals else None
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
    warning = startup_only(runs) if runs else None
    tests = [] if warning is not None else pairwise_tests(summaries, alpha)
    # One study file makes a campaign, so one metric; say so if members were edited apart.
    label = (
        "objective value" if len(metrics) > 1 else label_of(min(metrics, default=DEFAULT_METRIC))
    )
    optima = {r.optimum for r in runs}
    optimum = optima.pop() if len(optima) == 1 else None
    regret, normalized, note = (
        _regret(runs, samplers, maximize) if optimum is not None else ([], False, None)
    )
    lines = [warning] if warning else verdict(summaries, tests, alpha, maximize, label)
    return CampaignData(
        campaign,
        runs,
        samplers,
        target,
        target_fraction,
        summaries,
        tests,
        lines,
        alpha,
        label,
        startup_warning=warning,
        optimum=optimum,
        regret=regret,
        regret_normalized=normalized,
        regret_note=note,
    )


def verdict(
    summaries: dict[str, SamplerSummary],
    tests: list[PairTest],
    alpha: float,
    maximize: bool,
    label: str = label_of(DEFAULT_METRIC),
) -> list[str]:
    """Plain-language lines: the ranking, each pair's test, and what the repeats allow."""
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
    holm_note = f" over {len(tests)} pairs" if len(tests) > 1 else ""
    for t in tests:
        better, worse = (t.a, t.b) if (t.median_a >= t.median_b) == maximize else (t.b, t.a)
        stat = f"Mann-Whitney U = {t.u:g}, p = {t.p_value:.3g}, Holm-adjusted{holm_note} "
        if t.significant:
            lines.append(f"{better} beat {worse} ({stat}p = {t.p_adjusted:.3g} < {alpha}).")
        else:
            lines.append(
                f"{t.a} vs {t.b}: no significant difference ({stat}p = {t.p_adjusted:.3g} "
                f">= {alpha}); the medians differ by {abs(t.median_a - t.median_b):.4f}, "
                "which these repeats cannot tell from noise."
            )
    n_min = min(s.repeats for s in summaries.values())
    if n_min <= 3:
        lines.append(
            f"With {n_min} repeat(s) per sampler a two-sided Mann-Whitney test cannot reach "
            f"p < {alpha} even when every run of one sampler beats every run of another "
            "(the smallest possible p with 3 and 3 is 0.1): run more repeats before concluding."
        )
    return lines
