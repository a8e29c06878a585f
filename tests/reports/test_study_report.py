from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo.reports import load_study_data, safe_filename, study_figures, write_study_report
from tests.reports.factories import build_study


def test_extracted_data(sqlite_url: str) -> None:
    study = build_study(sqlite_url, "s1", n_trials=14)
    data = load_study_data(sqlite_url, "s1")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert data.best is not None
    assert data.best.value == pytest.approx(max(t.value for t in complete))
    assert data.best.params == max(complete, key=lambda t: t.value).params
    assert data.states == {"COMPLETE": len(complete), "PRUNED": 2, "FAIL": 2}
    assert data.class_names == ["Mild_Demented", "Moderate_Demented", "Non_Demented"]
    assert data.train_seconds_total == pytest.approx(sum(10.0 + i for i in range(14)))
    assert data.overhead_seconds_median == pytest.approx(0.5 + 0.1 * 6.5)
    assert data.failures and data.failures[0][1].startswith("out of memory")
    assert data.best.confusion is not None and len(data.best.roc_curves) == 3
    ids = [fid for fid, _, _ in study_figures(data)]
    assert ids == [
        "history",
        "curves",
        "importance",
        "parallel",
        "slice",
        "contour",
        "edf",
        "timeline",
        "confusion",
        "perclass",
        "roc",
    ]


def _figure_specs(html: str) -> dict[str, dict[str, Any]]:
    """Each figure's parsed JSON, by the id of the section that shows it."""
    sections = re.findall(
        r'<section id="([^"]+)"><h2>[^<]*</h2><div class="figure" id="fig-(\d+)"', html
    )
    blocks = dict(
        re.findall(r'<script type="application/json" id="data-(\d+)">(.*?)</script>', html, re.S)
    )
    return {sid: json.loads(blocks[index]) for sid, index in sections}


@pytest.mark.parametrize(("metric", "label"), [("macro_f1", "macro F1"), ("accuracy", "accuracy")])
def test_report_shows_best_value_and_counts(
    sqlite_url: str, tmp_path: Path, metric: str, label: str
) -> None:
    study = build_study(sqlite_url, "known", n_trials=14, metric=metric)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value or 0.0)
    html = write_study_report(sqlite_url, "known", tmp_path / "k.html").read_text()
    assert f"<b>{best.value:.4f}</b><span>best {label} (trial {best.number})</span>" in html
    assert "<b>14</b><span>trials</span>" in html
    assert re.search(r"<td>complete</td><td class=\"num\">10</td>", html)
    assert f"<td>objective</td><td>{label} (maximize) on the validation split</td>" in html
    figures = _figure_specs(html)
    history = figures["history"]
    assert history["layout"]["title"]["text"].lower() == f"{label} per trial, best so far".lower()
    values = history["data"][0]
    assert values["x"] == [t.number for t in complete]
    assert values["y"] == pytest.approx([t.value for t in complete])
    assert max(history["data"][1]["y"]) == pytest.approx(best.value)  # the best-so-far line
    assert figures["perclass"]["data"][0]["y"] == pytest.approx([best.value] * 3)
    assert figures["importance"]["layout"]["title"]["text"] == f"Parameter importances for {label}"
    if label != "macro F1":
        assert "macro F1" not in html


def test_missing_attrs_and_empty_studies(sqlite_url: str, tmp_path: Path) -> None:
    optuna.create_study(study_name="empty", storage=sqlite_url)
    data = load_study_data(sqlite_url, "empty")
    assert data.best is None and study_figures(data) == []
    plain = optuna.create_study(study_name="plain", storage=sqlite_url, direction="maximize")
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    # Not created by hpo: no metrics, no study file; the page still shows Optuna's facts.
    html = write_study_report(sqlite_url, "plain", tmp_path / "p.html").read_text()
    best = plain.best_trial
    assert f"<b>{best.value:.4f}</b><span>best macro F1 (trial {best.number})</span>" in html
    assert "<b>4</b><span>trials</span>" in html
    assert re.search(r'<td>complete</td><td class="num">4</td>', html)
    empty = write_study_report(sqlite_url, "empty", tmp_path / "e.html").read_text()
    assert "<b>–</b><span>no completed trial yet</span>" in empty
    assert "<b>0</b><span>trials</span>" in empty and 'id="fig-' not in empty


def test_postgres_study_report(postgres_url: str, tmp_path: Path) -> None:
    study = build_study(postgres_url, "pg", n_trials=8)
    html = write_study_report(postgres_url, "pg", tmp_path / "pg.html").read_text()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value or 0.0)
    assert "Study pg" in html
    assert f"<b>{best.value:.4f}</b><span>best macro F1 (trial {best.number})</span>" in html
    assert "<b>8</b><span>trials</span>" in html
    assert re.search(rf'<td>complete</td><td class="num">{len(complete)}</td>', html)
    history = _figure_specs(html)["history"]["data"][0]
    assert history["y"] == pytest.approx([t.value for t in complete])


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        self.handlers += [k for k, _ in attrs if k.startswith("on")]


HOSTILE = '<script>alert("x")</script>'


def test_hostile_names_render_as_text(sqlite_url: str, tmp_path: Path) -> None:
    build_study(
        sqlite_url,
        HOSTILE,
        classes=[HOSTILE, "b</script><img src=x onerror=alert(1)>"],
        param_names=(HOSTILE, "</script>"),
    )
    path = write_study_report(sqlite_url, HOSTILE, tmp_path / "h.html")
    html = path.read_text()
    parser = _Scripts()
    parser.feed(html)
    # Our scripts only: plotly inline, one JSON block per figure, and the loader.
    assert all(s.get("type") in (None, "application/json") for s in parser.scripts)
    n_json = sum(1 for s in parser.scripts if s.get("type") == "application/json")
    assert len(parser.scripts) == n_json + 2
    assert parser.handlers == []
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert len(re.findall(r"<script", html)) == len(parser.scripts)


def test_default_file_names_stay_in_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    for name in ("../../etc/passwd", "/abs/path", "a/b\\c", "..", ""):
        cleaned = safe_filename(name)
        assert "/" not in cleaned and "\\" not in cleaned and not cleaned.startswith(".")
    monkeypatch.chdir(tmp_path)
    build_study(sqlite_url, "../../escape", n_trials=3)
    path = write_study_report(sqlite_url, "../../escape")
    assert path.resolve().parent == (tmp_path / "reports").resolve()


def test_report_shows_what_the_numbers_depend_on(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study made by hpo records its machine (CPU model, vector instructions, threads)
    next to the library versions, and the report shows them."""
    from hpo import keys
    from hpo.config import load_config
    from hpo.storage import open_storage
    from hpo.studies import make_study
    from tests.conftest import REPO

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    config = load_config(REPO / "search_spaces" / "quickstart.yaml")
    study = make_study(config, open_storage(sqlite_url))
    machine = study.user_attrs[keys.STUDY_MACHINE]
    assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["usable_cpus"] >= 1
    assert machine["thread_env"] == {"OMP_NUM_THREADS": "3"}
    assert len(machine["flags_sha256"]) == 16
    assert all(
        f.startswith(("sse4", "avx", "fma", "f16c", "amx", "asimd", "sve", "neon"))
        for f in machine["simd"]
    )
    html = write_study_report(sqlite_url, study.study_name, tmp_path / "m.html").read_text()
    assert "<h2>What the numbers depend on</h2>" in html
    assert f"<td>CPU</td><td>{machine['cpu']} ({machine['machine']}," in html
    assert "OMP_NUM_THREADS=3" in html and machine["flags_sha256"] in html
    if machine["simd"]:
        assert " ".join(machine["simd"]) in html
