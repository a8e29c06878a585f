"""The model card: test-set figures and Grad-CAM examples in one offline HTML file.

Data (``TestMetrics``, ``GradCamSample``) comes in; ``card_figures`` turns it
into plotly figures; ``render_card`` puts figures, tables and images into the
template, which extends the page of ``hpo.html`` shared with reports.
plotly.js is inlined once and every name is escaped, so the card opens from
a USB stick in a hospital network without any request leaving it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.export._evaluate import OVERALL
from hpo.facts import DEFAULT_METRIC, METRIC_LABELS, label_of
from hpo.html import render_page

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hpo.export._calibration import Calibration, Reliability
    from hpo.export._evaluate import Estimate, TestMetrics

_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 40, "b": 60},
    "height": 440,
}


@dataclass(frozen=True)
class GradCamSample:
    """One test image explained: where to find it, its classes and the overlay.

    ``name`` is the image's file relative to the dataset folder (or its index
    in an ``.npz``), so a reader can open the original; the card warns that
    file names may carry patient identifiers.
    """

    index: int  # position in the test split
    true_class: int
    predicted_class: int
    probability: float
    png: bytes
    name: str = ""
    lime_png: bytes | None = None  # LIME of the same image, when drawn

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def lime_uri(self) -> str | None:
        if self.lime_png is None:
            return None
        return "data:image/png;base64," + base64.b64encode(self.lime_png).decode("ascii")


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


def _reliability_trace(rel: Reliability, name: str) -> go.Bar:
    import plotly.graph_objects as go

    mids = [(a + b) / 2 for a, b in zip(rel.edges[:-1], rel.edges[1:], strict=True)]
    return go.Bar(
        x=mids,
        y=[a if a is not None else 0.0 for a in rel.accuracy],
        width=[b - a for a, b in zip(rel.edges[:-1], rel.edges[1:], strict=True)],
        customdata=[
            [c, m if m is not None else float("nan")]
            for c, m in zip(rel.count, rel.confidence, strict=True)
        ],
        name=f"{name} (ECE {rel.ece:.3f})",
        opacity=0.6,
        hovertemplate="%{customdata[0]} images<br>mean confidence %{customdata[1]:.3f}"
        "<br>accuracy %{y:.3f}<extra></extra>",
    )


def reliability_figure(calibration: Calibration) -> go.Figure:
    """Accuracy per confidence bin against the diagonal a calibrated model would follow."""
    import plotly.graph_objects as go

    bins = len(calibration.before.count)
    fig = go.Figure()
    label = "as trained" if calibration.after is not None else "model"
    fig.add_trace(_reliability_trace(calibration.before, label))
    if calibration.after is not None:
        fig.add_trace(_reliability_trace(calibration.after, f"T = {calibration.temperature:.3f}"))
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"dash": "dot", "color": "#999"},
            name="perfect calibration",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        **_LAYOUT,
        barmode="overlay",
        title=f"Reliability diagram (test split, {bins} equal-width bins)",
    )
    fig.update_xaxes(title="confidence (top-class probability)", range=[0, 1])
    fig.update_yaxes(title="accuracy", range=[0, 1.02])
    return fig


def card_figures(
    metrics: TestMetrics, calibration: Calibration | None = None
) -> list[tuple[str, str, go.Figure]]:
    """(html id, heading, figure) for each figure of the card."""
    figures = [
        ("confusion", "Confusion matrix", confusion_figure(metrics)),
        ("roc", "ROC curves", roc_figure(metrics)),
        ("perclass", "Per-class metrics", per_class_figure(metrics)),
    ]
    if calibration is not None:
        figures.append(("reliability", "Calibration", reliability_figure(calibration)))
    return figures


# --------------------------------------------------------------------------
# page


def interval_text(e: Estimate, digits: int = 3) -> str:
    if e.value is None:
        return "-"
    if e.low is None or e.high is None:
        return f"{e.value:.{digits}f}"
    return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def render_card(
    *,
    metadata: dict[str, Any],
    metrics: TestMetrics,
    gradcam: list[GradCamSample],
    calibration: Calibration | None = None,
) -> str:
    """The whole card as one HTML string.

    Its headline is the study's objective metric (``metadata["objective"]``),
    the one the search chose this trial by.
    """
    by_class: list[tuple[str, list[GradCamSample]]] = [
        (name, [s for s in gradcam if s.true_class == k])
        for k, name in enumerate(metrics.class_names)
    ]
    objective = str(metadata.get("objective") or DEFAULT_METRIC)
    if objective not in metrics.overall:
        objective = DEFAULT_METRIC
    return render_page(
        "hpo.export/model_card.html.j2",
        title=f"Model card: {metadata['study']}, trial {metadata['trial']}",
        subtitle=f"{metadata['backbone']} · {len(metrics.class_names)} classes · "
        f"exported {metadata['created']}",
        nav=[("summary", "Summary"), ("use", "Intended use"), ("metrics", "Test metrics")],
        nav_after=[("gradcam", "Grad-CAM"), ("data", "Data"), ("model", "Model")],
        figures=card_figures(metrics, calibration),
        calibration=calibration,
        meta=metadata,
        metrics=metrics,
        objective=objective,
        objective_label=label_of(objective),
        overall_labels=_OVERALL_LABELS,
        gradcam=by_class,
        class_names=metrics.class_names,
        ci=interval_text,
    )


_OVERALL_LABELS = {key: METRIC_LABELS[key] for key in OVERALL}
