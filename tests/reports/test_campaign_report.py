from __future__ import annotations

import math
import statistics
from pathlib import Path

import optuna
import pytest

from hpo.errors import HpoError
from hpo.reports import list_campaigns, load_campaign_data, write_campaign_report
from hpo.reports._campaign import SamplerSummary, pairwise_tests, verdict
from tests.reports.factories import build_study


def make_campaign(url: str, name: str, gap: float, repeats: int = 6) -> None:
    # 14 trials: past the 10 random start-up trials TPE begins with.
    for r in range(repeats):
        build_study(
            url, f"{name}.tpe.r{r}", seed=r, sampler="tpe", campaign=name, repeat=r, n_trials=14
        )
        build_study(
            url,
            f"{name}.random.r{r}",
            seed=100 + r,
            sampler="random",
            campaign=name,
            repeat=r,
            n_trials=14,
            quality=-gap,
        )


def test_campaign_data(sqlite_url: str) -> None:
    make_campaign(sqlite_url, "clear", gap=0.3)
    make_campaign(sqlite_url, "same", gap=0.0)
    assert list_campaigns(sqlite_url) == ["clear", "same"]
    clear = load_campaign_data(sqlite_url, "clear")
    assert clear.samplers == ["random", "tpe"]
    assert len(clear.runs) == 12
    run = clear.runs[0]
    finished = [v for v in run.best_by_trial if not math.isnan(v)]
    assert finished == sorted(finished)  # best so far never decreases
    assert run.best_by_time and run.best_by_time[0][0] >= 0
    tpe, rnd = clear.summaries["tpe"], clear.summaries["random"]
    assert tpe.final_median > rnd.final_median
    assert tpe.trials_to_target_median is not None
    assert tpe.reached == sum(v >= clear.target for v in tpe.final_values) >= 1
    assert rnd.reached == sum(v >= clear.target for v in rnd.final_values)
    assert (test := clear.tests[0]).significant and test.p_value < 0.01
    assert any("beat" in line for line in clear.verdict)
    assert clear.metric_label == "macro F1"
    assert clear.verdict[0].startswith("Median final best macro F1: tpe ")
    same = load_campaign_data(sqlite_url, "same")
    assert not same.tests[0].significant
    assert any("no significant difference" in line for line in same.verdict)


def test_few_repeats_say_so(sqlite_url: str) -> None:
    make_campaign(sqlite_url, "few", gap=0.3, repeats=3)
    data = load_campaign_data(sqlite_url, "few")
    assert not data.tests[0].significant  # 3 vs 3 cannot reach p < 0.05
    assert any("cannot reach" in line for line in data.verdict)


def test_campaign_names_its_metric(sqlite_url: str, tmp_path: Path) -> None:
    for r in range(2):
        build_study(
            sqlite_url, f"acc.r{r}", seed=r, campaign="acc", repeat=r, n_trials=6, metric="accuracy"
        )
    data = load_campaign_data(sqlite_url, "acc")
    assert data.metric_label == "accuracy"
    finals = [r.final_best for r in data.runs if r.final_best is not None]
    assert data.verdict[0] == f"Median final best accuracy: tpe {statistics.median(finals):.4f}."
    html = write_campaign_report(sqlite_url, "acc", tmp_path / "acc.html").read_text()
    assert "<th>median final best accuracy</th>" in html and "macro F1" not in html
    build_study(sqlite_url, "acc.r9", campaign="acc", repeat=9, n_trials=3, metric="macro_f1")
    assert load_campaign_data(sqlite_url, "acc").metric_label == "objective value"


def test_write_and_unknown_campaign(sqlite_url: str, tmp_path: Path) -> None:
    make_campaign(sqlite_url, "<b>c</b>", gap=0.1, repeats=2)
    path = write_campaign_report(sqlite_url, "<b>c</b>", tmp_path / "c.html")
    html = path.read_text()
    assert "&lt;b&gt;c&lt;/b&gt;" in html and "<b>c</b>" not in html
    with pytest.raises(HpoError, match="no campaign named 'nope'; known: <b>c</b>"):
        write_campaign_report(sqlite_url, "nope")


def _real_campaign(url: str, name: str, n_trials: int, samplers: tuple[str, ...]) -> None:
    """Studies run by hpo's real samplers, seeded per repeat as ``hpo compare`` seeds them."""
    from hpo import keys
    from hpo.samplers import make_sampler

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        return 1.0 - (x - 0.3) ** 2 - abs(math.log10(lr) + 3) / 10

    for r in range(2):
        for sampler in samplers:
            study = optuna.create_study(
                study_name=f"{name}.{sampler}.r{r}",
                storage=url,
                direction="maximize",
                sampler=make_sampler(sampler, seed=r),
            )
            study.set_user_attr(keys.STUDY_SAMPLER, {"name": sampler, "seed": r, "options": {}})
            study.set_user_attr(keys.STUDY_CAMPAIGN, name)
            study.set_user_attr(keys.STUDY_REPEAT, r)
            study.optimize(objective, n_trials=n_trials)


def test_start_up_phase_allows_no_comparison(sqlite_url: str, tmp_path: Path) -> None:
    """Inside their 10 random start-up trials, TPE, GPyOpt and random search draw the
    same trials from the same seed: the report must say so instead of a verdict."""
    _real_campaign(sqlite_url, "early", 8, ("tpe", "gpyopt", "random"))
    data = load_campaign_data(sqlite_url, "early")
    values = {r.sampler: r.values for r in data.runs if r.repeat == 0}
    assert values["tpe"] == values["gpyopt"] == values["random"]  # the premise
    assert data.startup_warning is not None
    assert data.startup_warning.startswith(
        "All samplers were still in their random start-up phase; no comparison is "
        "possible: run more than 10 trials"
    )
    assert data.verdict == [data.startup_warning] and data.tests == []
    html = write_campaign_report(sqlite_url, "early", tmp_path / "early.html").read_text()
    assert '<section id="startup" class="alert">' in html
    assert html.index("no comparison is possible") < html.index('<section id="summary">')
    assert "beat" not in html and "no significant difference" not in html


def test_past_the_start_up_phase_the_samplers_differ(sqlite_url: str) -> None:
    _real_campaign(sqlite_url, "later", 13, ("tpe", "random"))
    data = load_campaign_data(sqlite_url, "later")
    assert data.startup_warning is None
    assert len(data.tests) == 1 and data.verdict[0].startswith("Median final best")


def test_identical_values_past_the_start_up_count(sqlite_url: str) -> None:
    """Samplers whose start-up phase is unknown but whose trials are the same, repeat
    by repeat, are not compared either."""
    for r in range(3):
        for sampler in ("tpe", "custom"):
            build_study(
                sqlite_url,
                f"same.{sampler}.r{r}",
                seed=r,
                sampler=sampler,
                campaign="twin",
                repeat=r,
                n_trials=12,
            )
    data = load_campaign_data(sqlite_url, "twin")
    assert data.startup_warning is not None and "identical in every repeat" in data.startup_warning
    assert data.tests == []


def test_regret_to_a_known_optimum(sqlite_url: str, tmp_path: Path) -> None:
    """Bayesmark's normalized regret: 0 at the optimum, 1 at random search's median."""
    for r in range(4):
        build_study(
            sqlite_url, f"opt.tpe.r{r}", seed=r, campaign="opt", repeat=r, n_trials=30, optimum=1.0
        )
        build_study(
            sqlite_url,
            f"opt.random.r{r}",
            seed=50 + r,
            sampler="random",
            campaign="opt",
            repeat=r,
            n_trials=30,
            quality=-0.2,
            optimum=1.0,
        )
    data = load_campaign_data(sqlite_url, "opt")
    assert data.optimum == 1.0 and data.regret_normalized
    # 26 finished trials of 30 (the factory fails every seventh): 50 and 100 not reached.
    assert sorted({p.budget for p in data.regret}) == [25, 26]
    runs = {name: [r for r in data.runs if r.sampler == name] for name in data.samplers}
    for budget in (25, 26):
        scale = statistics.median(1.0 - r.best_by_trial[budget - 1] for r in runs["random"])
        for name in ("random", "tpe"):
            point = next(p for p in data.regret if p.sampler == name and p.budget == budget)
            expected = [(1.0 - r.best_by_trial[budget - 1]) / scale for r in runs[name]]
            assert point.values == pytest.approx(expected)
            assert point.mean == pytest.approx(statistics.mean(expected))
            assert point.low <= point.mean <= point.high
        random_point = next(p for p in data.regret if p.sampler == "random" and p.budget == 25)
        assert statistics.median(random_point.values) == pytest.approx(1.0)
    tpe25 = next(p for p in data.regret if p.sampler == "tpe" and p.budget == 25)
    assert tpe25.high < 1.0  # clearly better than random search here
    html = write_campaign_report(sqlite_url, "opt", tmp_path / "opt.html").read_text()
    assert '<section id="regret">' in html and "Bayesmark" in html


def test_regret_without_random_search_is_not_normalized(sqlite_url: str) -> None:
    for r in range(2):
        for sampler, q in (("tpe", 0.0), ("gp", -0.1)):
            build_study(
                sqlite_url,
                f"nr.{sampler}.r{r}",
                seed=10 * r + len(sampler),
                sampler=sampler,
                campaign="nr",
                repeat=r,
                n_trials=12,
                quality=q,
                optimum=1.0,
            )
    data = load_campaign_data(sqlite_url, "nr")
    assert not data.regret_normalized and data.regret_note is not None
    assert [p.budget for p in data.regret] == [11, 11]  # 11 finished trials of 12
    for p in data.regret:
        gaps = [1.0 - r.best_by_trial[10] for r in data.runs if r.sampler == p.sampler]
        assert p.values == pytest.approx(gaps)


def test_pairwise_verdict_is_holm_adjusted() -> None:
    """Three samplers make three tests: a pair at raw p = 0.026 is not significant once
    adjusted (Holm: 0.026 x 3), and the verdict says no significant difference."""
    finals = {
        "tpe": [0.60, 0.62, 0.64, 0.66, 0.68, 0.70],
        "gp": [0.51, 0.52, 0.53, 0.54, 0.61, 0.65],
        "random": [0.505, 0.515, 0.525, 0.535, 0.615, 0.655],
    }
    summaries = {
        name: SamplerSummary(name, 6, statistics.median(v), v, None, 0, None)
        for name, v in finals.items()
    }
    tests = {(t.a, t.b): t for t in pairwise_tests(summaries, 0.05)}
    assert set(tests) == {("gp", "random"), ("gp", "tpe"), ("random", "tpe")}
    for pair in (("gp", "tpe"), ("random", "tpe")):
        t = tests[pair]
        assert t.p_value == pytest.approx(0.025974, abs=1e-6)  # below 0.05 unadjusted
        assert t.p_adjusted == pytest.approx(3 * t.p_value) and not t.significant
    lines = verdict(summaries, list(tests.values()), 0.05, maximize=True)
    assert not any("beat" in line for line in lines)
    assert any(
        "tpe: no significant difference" in line and "Holm-adjusted over 3 pairs" in line
        for line in lines
    )


def test_start_up_counts_follow_each_samplers_options() -> None:
    from hpo.campaign import startup_trials

    assert startup_trials({"name": "tpe", "options": {}}) == 10
    assert startup_trials({"name": "tpe", "options": {"n_startup_trials": 20}}) == 20
    assert startup_trials({"name": "gp", "options": {"n_startup_trials": 4}}) == 4
    assert startup_trials({"name": "gpyopt", "options": {"n_initial": 15}}) == 15
    assert startup_trials({"name": "gpyopt", "options": {"n_startup_trials": 15}}) == 10
    assert startup_trials({"name": "random", "options": {}}) == 0
    assert startup_trials({}) == 0
