"""Study figures from report data: optuna.visualization where it draws them, ours elsewhere.

Every figure's data is bounded (see ``_bounded``): a 10,000-trial study gives
a page of a few MB. No figure sets a pixel width; each fills its card.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from optuna import visualization as ov

from hpo.reports._bounded import (
    IMPORTANCE_TRIALS,
    MAX_CURVES,
    ContourInfo,
    EdfInfo,
    HistoryInfo,
    ParallelInfo,
    SliceInfo,
    contour_info,
    edf_info,
    history_info,
    parallel_info,
    shown_note,
    slice_info,
    thin,
)
from hpo.reports._extract import StudyData, TimelineBar, _in_memory, importances, timeline

if TYPE_CHECKING:
    from collections.abc import Sequence

_STATE_COLORS = {
    "COMPLETE": "#2a7ab0",
    "PRUNED": "#e0a030",
    "FAIL": "#c0392b",
    "RUNNING": "#7f8c8d",
    "WAITING": "#bdc3c7",
}
_PALETTE = ["#2a7ab0", "#d35400", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"]
_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "height": 420,
    "autosize": True,
}
_SLICE_COLUMNS = 3


def _style(fig: go.Figure, title: str) -> go.Figure:
    # No fixed width (Optuna's slice plot sets 300 px per parameter): fill the card.
    fig.update_layout(title={"text": title}, width=None, **_LAYOUT)
    return fig


def study_figures(data: StudyData) -> list[tuple[str, str, go.Figure]]:
    """(section id, title, figure) for every figure of a study report."""
    out: list[tuple[str, str, go.Figure]] = []
    complete = data.completed
    if not complete:
        return out
    maximize = data.direction == "maximize"
    label = data.metric_label  # the study's objective.metric, e.g. "macro F1"
    imp = importances(data)
    params = list(imp) or sorted(complete[0].params)
    out.append(
        (
            "history",
            "Optimization history",
            history_figure(history_info(complete, maximize=maximize), label),
        )
    )
    stepped = [t for t in data.trials if t.intermediate_values]
    if stepped:
        curves = thin(stepped, MAX_CURVES, maximize=maximize)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = ov.plot_intermediate_values(_in_memory(curves, data.direction, data.name))
        title = f"Validation {label} per epoch (pruned trials stop early)"
        title += shown_note(len(curves), len(stepped), "curves")
        out.append(("curves", f"Per-epoch validation {label}", _style(fig, title)))
    if imp:
        note = shown_note(min(len(complete), IMPORTANCE_TRIALS), len(complete), how="spread evenly")
        out.append(("importance", "Parameter importances", _importance_figure(imp, label, note)))
    if params:
        info = parallel_info(complete, params[:8], maximize=maximize)
        out.append(("parallel", "Parallel coordinates", parallel_figure(info, label)))
        out.append(
            (
                "slice",
                "Slice plots",
                slice_figure(slice_info(complete, params[:8], maximize=maximize), label),
            )
        )
    if len(params) >= 2:
        contour = contour_info(complete, params[0], params[1], maximize=maximize)
        out.append(
            (
                "contour",
                "Contour of the two most important parameters",
                contour_figure(contour, label, maximize=maximize),
            )
        )
    out.append(("edf", f"Empirical distribution of {label}", edf_figure(edf_info(complete), label)))
    bars = timeline(data)
    if bars:
        started = sum(1 for t in data.trials if t.datetime_start is not None)
        out.append(("timeline", "Trials per worker", timeline_figure(bars, started)))
    best = data.best
    if best is not None:
        names = data.class_names or [str(i) for i in range(len(best.f1_per_class))]
        if best.confusion:
            out.append(
                (
                    "confusion",
                    "Best trial: confusion matrix",
                    confusion_figure(best.confusion, names),
                )
            )
        if best.f1_per_class:
            out.append(
                ("perclass", "Best trial: per-class F1", per_class_figure(best.f1_per_class, names))
            )
        if any(c.get("fpr") for c in best.roc_curves):
            out.append(("roc", "Best trial: ROC curves", roc_figure(best.roc_curves, names)))
    return out


def history_figure(info: HistoryInfo, label: str) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            x=info.numbers,
            y=info.values,
            mode="markers",
            name=label,
            marker={"color": _PALETTE[0], "size": 5},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=info.best_numbers,
            y=info.best_values,
            mode="lines",
            line={"shape": "hv", "color": _PALETTE[1]},
            name="best so far",
        )
    )
    if info.infeasible:
        # A trial that broke a constraint is drawn apart: it can score high but is never best.
        bad = set(info.infeasible)
        pairs = [(n, v) for n, v in zip(info.numbers, info.values, strict=True) if n in bad]
        fig.add_trace(
            go.Scatter(
                x=[n for n, _ in pairs],
                y=[v for _, v in pairs],
                mode="markers",
                name="infeasible (constraint broken)",
                marker={"color": "#b2182b", "size": 7, "symbol": "x"},
            )
        )
    fig.update_xaxes(title="trial")
    fig.update_yaxes(title=label)
    title = f"{label[:1].upper()}{label[1:]} per trial, best so far"
    return _style(fig, title + shown_note(info.shown, info.total))


def edf_figure(info: EdfInfo, label: str) -> go.Figure:
    fig = go.Figure(
        go.Scatter(x=info.x, y=info.y, mode="lines", line={"color": _PALETTE[0], "shape": "hv"})
    )
    fig.update_xaxes(title=label)
    fig.update_yaxes(title="share of trials at or below", range=[0, 1.02])
    return _style(fig, f"Empirical distribution of {label} ({info.total:,} complete trials)")


def parallel_figure(info: ParallelInfo, label: str) -> go.Figure:
    dims: list[dict[str, object]] = [{"label": label, "values": info.values}]
    for axis in info.axes:
        dim: dict[str, object] = {"label": axis.name, "values": info.columns[axis.name]}
        if axis.kind == "category":
            dim["tickvals"] = list(range(len(axis.labels)))
            dim["ticktext"] = list(axis.labels)
        elif axis.kind == "log":  # values are log10: label the decades
            decades = range(math.floor(axis.low), math.ceil(axis.high) + 1)
            dim["tickvals"] = list(decades)
            dim["ticktext"] = [f"1e{k}" for k in decades]
        dims.append(dim)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line={"color": info.values, "colorscale": "Blues", "showscale": True},
            domain={"x": [0.0, 0.9]},  # the colour bar to the right of the last axis
        )
    )
    fig = _style(fig, "Parallel coordinates" + shown_note(info.shown, info.total))
    # Axis labels sit above the plot and tick labels beside the outer axes.
    fig.update_layout(margin={"l": 70, "r": 70, "t": 90, "b": 40})
    return fig


def _axis_layout(kind: str) -> dict[str, object]:
    return {"type": "category"} if kind == "category" else {"type": kind}


def slice_figure(info: SliceInfo, label: str) -> go.Figure:
    """One small scatter per parameter, wrapped in rows so it fits any card width."""
    from plotly.subplots import make_subplots

    n = len(info.axes)
    cols = min(_SLICE_COLUMNS, n)
    rows = math.ceil(n / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[a.name for a in info.axes],
        shared_yaxes=True,
        horizontal_spacing=0.06,
        vertical_spacing=0.22 / rows,
    )
    for k, axis in enumerate(info.axes):
        row, col = k // cols + 1, k % cols + 1
        fig.add_trace(
            go.Scatter(
                x=info.x[axis.name],
                y=info.y[axis.name],
                mode="markers",
                marker={
                    "size": 5,
                    "color": info.numbers[axis.name],
                    "colorscale": "Blues",
                    "showscale": k == 0,
                    "colorbar": {"title": "trial"},
                    "line": {"width": 0.5, "color": "Grey"},
                },
                customdata=info.numbers[axis.name],
                hovertemplate="trial %{customdata}<br>%{x}<br>%{y:.4f}<extra></extra>",
                showlegend=False,
            ),
            row=row,
            col=col,
        )
        fig.update_xaxes(row=row, col=col, **_axis_layout(axis.kind))
    fig.update_yaxes(title=label, col=1)
    fig = _style(fig, f"Slice plots{shown_note(info.shown, info.total)}")
    fig.update_layout(height=max(420, 300 * rows))
    return fig


def contour_figure(info: ContourInfo, label: str, *, maximize: bool) -> go.Figure:
    """The smoothed mean on a fixed grid, with the (thinned) trials and the best on top."""
    fig = go.Figure(
        go.Contour(
            x=info.x_centers,
            y=info.y_centers,
            z=info.z,
            colorscale="Blues",
            reversescale=not maximize,
            connectgaps=True,
            contours={"coloring": "heatmap"},
            colorbar={"title": label},
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=info.points_x,
            y=info.points_y,
            mode="markers",
            marker={"size": 4, "color": "black", "opacity": 0.5},
            customdata=info.points_value,
            hovertemplate="%{x}, %{y}<br>%{customdata:.4f}<extra></extra>",
            name="trials",
            showlegend=False,
        )
    )
    if info.best is not None:
        fig.add_trace(
            go.Scatter(
                x=[info.best[0]],
                y=[info.best[1]],
                mode="markers",
                marker={"size": 12, "color": "#d35400", "symbol": "star"},
                name="best trial",
                showlegend=False,  # the colour bar's place; the title names the star
            )
        )
    fig.update_xaxes(title=info.x.name, **_axis_layout(info.x.kind))
    fig.update_yaxes(title=info.y.name, **_axis_layout(info.y.kind))
    grid = f"{len(info.x_centers)} x {len(info.y_centers)} grid of smoothed means, star: best"
    return _style(
        fig,
        f"Contour: {info.x.name} x {info.y.name} ({grid}){shown_note(info.shown, info.total)}",
    )


def _importance_figure(imp: dict[str, float], label: str, note: str = "") -> go.Figure:
    names = list(imp)[::-1]
    fig = go.Figure(
        go.Bar(x=[imp[n] for n in names], y=names, orientation="h", marker_color=_PALETTE[0])
    )
    fig.update_xaxes(title="importance (PED-ANOVA)")
    return _style(fig, f"Parameter importances for {label}{note}")


def timeline_figure(bars: Sequence[TimelineBar], total: int | None = None) -> go.Figure:
    fig = go.Figure()
    for state in sorted({b.state for b in bars}):
        mine = [b for b in bars if b.state == state]
        fig.add_trace(
            go.Bar(
                base=[b.start.isoformat() for b in mine],
                x=[(b.end - b.start).total_seconds() * 1000.0 for b in mine],
                y=[b.worker for b in mine],
                orientation="h",
                name=state.lower(),
                marker_color=_STATE_COLORS.get(state, "#95a5a6"),
                customdata=[[b.number, "-" if b.value is None else f"{b.value:.4f}"] for b in mine],
                hovertemplate="trial %{customdata[0]}<br>value %{customdata[1]}<extra></extra>",
            )
        )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(type="date", title="time")
    fig.update_yaxes(title="worker (device)")
    note = shown_note(len(bars), total) if total is not None else ""
    return _style(fig, f"Timeline of trials per worker{note}")


def confusion_figure(matrix: list[list[int]], names: list[str]) -> go.Figure:
    totals = [max(sum(row), 1) for row in matrix]
    norm = [[v / totals[i] for v in row] for i, row in enumerate(matrix)]
    text = [[f"{v}<br>{norm[i][j]:.0%}" for j, v in enumerate(row)] for i, row in enumerate(matrix)]
    fig = go.Figure(
        go.Heatmap(
            z=norm,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "row share"},
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        )
    )
    fig.update_xaxes(title="predicted", type="category")
    fig.update_yaxes(title="true", autorange="reversed", type="category")
    return _style(fig, "Confusion matrix on the validation split (counts, row %)")


def per_class_figure(f1: list[float], names: list[str]) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=names[: len(f1)],
            y=f1,
            marker_color=_PALETTE[0],
            text=[f"{v:.3f}" for v in f1],
            textposition="outside",
        )
    )
    fig.update_yaxes(range=[0, 1.08], title="F1")
    fig.update_xaxes(type="category")
    return _style(fig, "Per-class F1 of the best trial")


def roc_figure(curves: list[dict[str, object]], names: list[str]) -> go.Figure:
    fig = go.Figure()
    for i, c in enumerate(curves):
        if not c.get("fpr"):
            continue
        auc = c.get("auc")
        label = names[i] if i < len(names) else str(i)
        fig.add_trace(
            go.Scatter(
                x=c["fpr"],
                y=c["tpr"],
                mode="lines",
                name=f"{label} (AUC {auc:.3f})" if isinstance(auc, float) else label,
                line={"color": _PALETTE[i % len(_PALETTE)]},
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#999"}
        )
    )
    fig.update_xaxes(title="false positive rate", range=[0, 1])
    fig.update_yaxes(title="true positive rate", range=[0, 1.02])
    return _style(fig, "One-vs-rest ROC curves of the best trial")
