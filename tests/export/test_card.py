"""The model card page: values from ``TestMetrics`` shown, names escaped, offline."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from hpo.export import card_figures, render_card
from tests.export.card_inputs import CLASSES, OVERALL_VALUES, gradcam, metadata, sample_metrics


def _figures(html: str) -> list[dict[str, object]]:
    blocks = re.findall(r'<script type="application/json" id="data-\d+">(.*?)</script>', html, re.S)
    return [json.loads(b) for b in blocks]


def test_card_shows_the_metrics_with_intervals() -> None:
    html = render_card(metadata=metadata(), metrics=sample_metrics(), gradcam=gradcam())
    for key, (value, low, high) in OVERALL_VALUES.items():
        assert f"{value:.3f} [{low:.3f}, {high:.3f}]" in html, key
    # the headline is the objective metric, named
    kpi = re.search(r'<div class="kpi"><b>([^<]*)</b><span>test macro F1', html)
    assert kpi is not None and kpi.group(1) == "0.812 [0.751, 0.870]"
    assert "<b>31</b><span>test images</span>" in html  # 11 + 7 + 13
    assert "200 bootstrap resamples" in html and "seed 7" in html
    assert html.count('<figure class="cam">') == 2
    assert html.count('class="wrong"') == 1  # the second sample is misclassified


def test_card_headline_follows_the_objective_metric() -> None:
    html = render_card(metadata=metadata("accuracy"), metrics=sample_metrics(), gradcam=[])
    kpi = re.search(r'<div class="kpi"><b>([^<]*)</b><span>test ([^[<]*) \[', html)
    assert kpi is not None
    assert kpi.groups() == ("0.835 [0.773, 0.892]", "accuracy")
    assert "(accuracy) on the validation split" in html


def test_card_escapes_names_and_is_self_contained() -> None:
    html = render_card(metadata=metadata(), metrics=sample_metrics(), gradcam=gradcam())
    for name in CLASSES:
        assert name not in html  # raw, each would break out of its cell or attribute
    assert "glioma &lt;b&gt;" in html and "meningioma &amp; co" in html
    assert "no &#34;tumour&#34;" in html
    assert "Model card: brain &lt;mri&gt;, trial 4" in html
    assert "<script src=" not in html and "Plotly.newPlot" in html
    # Every figure's JSON parses back to the class names, unescaped.
    figures = _figures(html)
    assert len(figures) == len(card_figures(sample_metrics())) == 3
    confusion = figures[0]["data"][0]  # type: ignore[index]
    assert confusion["x"] == CLASSES and confusion["text"][2][2] == "12"
    assert "</script" not in "".join(re.findall(r'id="data-\d+">(.*?)</script>', html, re.S))


def test_card_nav_lists_sections_then_figures() -> None:
    html = render_card(metadata=metadata(), metrics=sample_metrics(), gradcam=[])
    nav = re.search(r"<nav>(.*?)</nav>", html, re.S)
    assert nav is not None
    ids = re.findall(r'href="#([^"]+)"', nav.group(1))
    sections = ["summary", "use", "metrics"]
    after = ["gradcam", "data", "model"]
    assert ids == [*sections, "confusion", "roc", "perclass", *after]
    for section in ids:
        assert f'id="{section}"' in html


@pytest.mark.parametrize("objective", ["no_such_metric", None])
def test_unknown_objective_falls_back_to_macro_f1(objective: str | None) -> None:
    meta = metadata()
    meta["objective"] = objective
    html = unescape(render_card(metadata=meta, metrics=sample_metrics(), gradcam=[]))
    assert "<span>test macro F1 [95 % interval]</span>" in html
