"""The model card: test-set figures and Grad-CAM examples in one offline HTML file.

Data (``TestMetrics``, ``GradCamSample``) comes in; ``card_figures`` turns it
into plotly figures; ``render_card`` puts figures, tables and images into the
template. plotly.js is inlined once and every name is escaped, so the card
opens from a USB stick in a hospital network without any request leaving it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jinja2

from hpo.reports._html import figure_json, plotly_js

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hpo.export._evaluate import Estimate, TestMetrics

_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 40, "b": 60},
    "height": 440,
}


@dataclass(frozen=True)
class GradCamSample:
    """One test image explained: its position in the test split, classes and overlay.

    The card names test images by position only: file names of medical images
    often carry patient identifiers.
    """

    index: int
    true_class: int
    predicted_class: int
    probability: float
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


# --------------------------------------------------------------------------
# figures


def confusion_figure(metrics: TestMetrics) -> go.Figure:
    """Counts as text, colour by row share, so a rare class reads as clearly as a big one."""
    import plotly.graph_objects as go

    cm = metrics.confusion_matrix
    names = metrics.class_names
    shares = [[v / max(sum(row), 1) for v in row] for row in cm]
    fig = go.Figure(
        go.Heatmap(
            z=shares,
            x=names,
            y=names,
            text=[[str(v) for v in row] for row in cm],
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "row share"},
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images<extra></extra>",
        )
    )
    fig.update_layout(**_LAYOUT, title="Confusion matrix (test split)")
    fig.update_xaxes(title="predicted class", type="category")
    fig.update_yaxes(title="true class", type="category", autorange="reversed")
    return fig


def roc_figure(metrics: TestMetrics) -> go.Figure:
    """One-vs-rest ROC curve per class, AUC and its interval in the legend."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, curve, row in zip(
        metrics.class_names, metrics.roc_curves, metrics.per_class, strict=True
    ):
        if not curve.get("fpr"):
            continue
        fig.add_trace(
            go.Scatter(
                x=curve["fpr"],
                y=curve["tpr"],
                mode="lines",
                name=f"{name} (AUC {interval_text(row['roc_auc'])})",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"dash": "dot", "color": "#999"},
            name="chance",
            hoverinfo="skip",
        )
    )
    fig.update_layout(**_LAYOUT, title="ROC curves, one class vs rest (test split)")
    fig.update_xaxes(title="false positive rate", range=[0, 1])
    fig.update_yaxes(title="true positive rate", range=[0, 1.02])
    return fig


def per_class_figure(metrics: TestMetrics) -> go.Figure:
    """F1, precision and recall per class with their 95 % bootstrap intervals."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for key in ("f1", "precision", "recall"):
        values = [row[key].value or 0.0 for row in metrics.per_class]
        plus = [_err(row[key], upper=True) for row in metrics.per_class]
        minus = [_err(row[key], upper=False) for row in metrics.per_class]
        fig.add_trace(
            go.Bar(
                x=metrics.class_names,
                y=values,
                name=key,
                error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
            )
        )
    fig.update_layout(**_LAYOUT, barmode="group", title="Per-class metrics (test split)")
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[0, 1.05])
    return fig


def _err(e: Estimate, *, upper: bool) -> float:
    if e.value is None or e.low is None or e.high is None:
        return 0.0
    return max(0.0, (e.high - e.value) if upper else (e.value - e.low))


def card_figures(metrics: TestMetrics) -> list[tuple[str, str, go.Figure]]:
    """(html id, heading, figure) for each figure of the card."""
    return [
        ("confusion", "Confusion matrix", confusion_figure(metrics)),
        ("roc", "ROC curves", roc_figure(metrics)),
        ("perclass", "Per-class metrics", per_class_figure(metrics)),
    ]


# --------------------------------------------------------------------------
# page


def interval_text(e: Estimate, digits: int = 3) -> str:
    if e.value is None:
        return "-"
    if e.low is None or e.high is None:
        return f"{e.value:.{digits}f}"
    return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hpo.export", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def render_card(
    *,
    metadata: dict[str, Any],
    metrics: TestMetrics,
    gradcam: list[GradCamSample],
) -> str:
    """The whole card as one HTML string."""
    figures = card_figures(metrics)
    by_class: list[tuple[str, list[GradCamSample]]] = [
        (name, [s for s in gradcam if s.true_class == k])
        for k, name in enumerate(metrics.class_names)
    ]
    return (
        _env()
        .get_template("model_card.html.j2")
        .render(
            meta=metadata,
            metrics=metrics,
            overall_labels=_OVERALL_LABELS,
            figures=[(fid, label, i) for i, (fid, label, _) in enumerate(figures)],
            figure_json=[figure_json(fig) for _, _, fig in figures],
            plotly_js=plotly_js(),
            gradcam=by_class,
            class_names=metrics.class_names,
            ci=interval_text,
        )
    )


_OVERALL_LABELS = {
    "macro_f1": "macro F1",
    "weighted_f1": "weighted F1",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall (sensitivity)",
    "roc_auc": "ROC AUC (mean one-vs-rest)",
}
