from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from hpo.errors import HpoError
from hpo.reports import list_campaigns, load_campaign_data, write_campaign_report
from tests.reports.factories import build_study


def make_campaign(url: str, name: str, gap: float, repeats: int = 6) -> None:
    for r in range(repeats):
        build_study(
            url, f"{name}.tpe.r{r}", seed=r, sampler="tpe", campaign=name, repeat=r, n_trials=10
        )
        build_study(
            url,
            f"{name}.random.r{r}",
            seed=100 + r,
            sampler="random",
            campaign=name,
            repeat=r,
            n_trials=10,
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
