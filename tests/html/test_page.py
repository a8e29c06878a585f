"""The shared HTML layer: one environment, the base page, escaping, helpers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import plotly.graph_objects as go
import pytest

from hpo import html

HOSTILE = '</script><img src=x onerror="alert(1)">&'


def test_figure_json_cannot_end_its_script_and_parses_back() -> None:
    fig = go.Figure(go.Bar(x=[HOSTILE], y=[0.25]), layout={"title": {"text": HOSTILE}})
    text = html.figure_json(fig)
    assert "<" not in text and ">" not in text and "&" not in text
    spec = json.loads(text)
    assert spec["data"][0]["x"] == [HOSTILE] and spec["data"][0]["y"] == [0.25]
    assert spec["layout"]["title"]["text"] == HOSTILE


def test_plotly_js_is_inlined_without_a_closing_tag() -> None:
    js = html.plotly_js()
    assert len(js) > 1_000_000 and "</" not in js
    assert html.plotly_js() is js  # read once per process


def _page(body: str) -> jinja2.Template:
    return html.environment().from_string(
        '{% extends "hpo.html/base.html.j2" %}{% block content %}' + body + "{% endblock %}"
    )


def test_render_page_lays_out_nav_figures_and_escapes() -> None:
    fig = go.Figure(go.Scatter(x=[1, 2], y=[0.5, 0.75]))
    # One environment for every page: reports and the card share its cache.
    name = "hpo.export/model_card.html.j2"
    assert html.environment().get_template(name) is html.environment().get_template(name)
    out = html.render_page(
        "hpo.html/base.html.j2",
        title=f"T {HOSTILE}",
        subtitle="sub",
        nav=[("summary", "Summary")],
        figures=[("history", "History", fig)],
        nav_after=[("end", "End")],
    )
    nav = re.search(r"<nav>(.*?)</nav>", out, re.S)
    assert nav is not None
    assert re.findall(r'href="#([^"]+)"', nav.group(1)) == ["summary", "history", "end"]
    assert HOSTILE not in out and "T &lt;/script&gt;&lt;img" in out
    block = re.search(r'<script type="application/json" id="data-0">(.*?)</script>', out, re.S)
    assert block is not None and json.loads(block.group(1))["data"][0]["y"] == [0.5, 0.75]
    assert out.count("<script") == 3  # plotly.js, one figure, the loader


def test_base_blocks_and_strict_undefined() -> None:
    ctx = {
        "title": "t",
        "subtitle": "s",
        "nav": [],
        "figures": [],
        "figure_json": [],
        "plotly_js": "",
    }
    out = _page("<p>{{ value }}</p>").render(value="<b>", **ctx)
    assert "<p>&lt;b&gt;</p>" in out
    with pytest.raises(jinja2.UndefinedError):
        _page("{{ missing }}").render(**ctx)


@pytest.mark.parametrize("name", ["base.html.j2", "jinja2/x.j2", "os/base.html.j2"])
def test_only_hpo_packages_hold_templates(name: str) -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        html.environment().get_template(name)


def test_fmt_and_seconds() -> None:
    assert [html.fmt(v) for v in (None, True, 0.5, 2.0, 1e-5, 123456.0, 0.123456, 7, "a")] == [
        "-",
        "True",
        "0.5",
        "2",
        "1.000e-05",
        "1.235e+05",
        "0.1235",
        "7",
        "a",
    ]
    assert [html.seconds(v) for v in (None, 5.0, 600.0, 10800.0)] == [
        "-",
        "5.0 s",
        "10.0 min",
        "3.0 h",
    ]


def test_safe_filename_and_write_page(tmp_path: Path) -> None:
    assert html.safe_filename("study-1") == "study-1.html"
    cleaned = html.safe_filename("../a b")
    assert re.fullmatch(r"a_b-[0-9a-f]{8}\.html", cleaned)
    assert html.safe_filename("../a b") != html.safe_filename("../a_b")
    path = html.write_page(tmp_path / "sub" / "p.html", "<p>é</p>")
    assert path.read_text(encoding="utf-8") == "<p>é</p>"
    assert [p.name for p in path.parent.iterdir()] == ["p.html"]  # no .tmp left behind
