"""Figures from report data: optuna.visualization where it draws them, ours elsewhere."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from optuna import visualization as ov

from hpo.reports._extract import (
    CampaignData,
    StudyData,
    TimelineBar,
    _in_memory,
    importances,
    mean_interval,
    timeline,
)

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
}


def _style(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title={"text": title}, **_LAYOUT)
    return fig


def study_figures(data: StudyData) -> list[tuple[str, str, go.Figure]]:
    """(section id, title, figure) for every figure of a study report."""
    out: list[tuple[str, str, go.Figure]] = []
    if not data.completed:
        return out
    study = _in_memory(data.trials, data.direction, data.name)
    label = data.metric_label  # the study's objective.metric, e.g. "macro F1"
    imp = importances(data)
    ranked = list(imp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.append(
            (
                "history",
                "Optimization history",
                _style(
                    ov.plot_optimization_history(study, target_name=label),
                    f"{label[:1].upper()}{label[1:]} per trial, best so far",
                ),
            )
        )
        if any(t.intermediate_values for t in data.trials):
            out.append(
                (
                    "curves",
                    f"Per-epoch validation {label}",
                    _style(
                        ov.plot_intermediate_values(study),
                        f"Validation {label} per epoch (pruned trials stop early)",
                    ),
                )
            )
        if imp:
            out.append(("importance", "Parameter importances", _importance_figure(imp, label)))
        params = ranked or sorted(data.completed[0].params)
        if params:
            out.append(
                (
                    "parallel",
                    "Parallel coordinates",
                    _style(
                        ov.plot_parallel_coordinate(study, params=params[:8]),
                        "Parallel coordinates",
                    ),
                )
            )
            out.append(
                (
                    "slice",
                    "Slice plots",
                    _style(ov.plot_slice(study, params=params[:8]), "Slice plots"),
                )
            )
        if len(params) >= 2:
            out.append(
                (
                    "contour",
                    "Contour of the two most important parameters",
                    _style(
                        ov.plot_contour(study, params=params[:2]),
                        f"Contour: {params[0]} x {params[1]}",
                    ),
                )
            )
        out.append(
            (
                "edf",
                f"Empirical distribution of {label}",
                _style(ov.plot_edf(study, target_name=label), f"Empirical distribution of {label}"),
            )
        )
    bars = timeline(data)
    if bars:
        out.append(("timeline", "Trials per worker", timeline_figure(bars)))
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


def _importance_figure(imp: dict[str, float], label: str) -> go.Figure:
    names = list(imp)[::-1]
    fig = go.Figure(
        go.Bar(x=[imp[n] for n in names], y=names, orientation="h", marker_color=_PALETTE[0])
    )
    fig.update_xaxes(title="importance (PED-ANOVA)")
    return _style(fig, f"Parameter importances for {label}")


def timeline_figure(bars: Sequence[TimelineBar]) -> go.Figure:
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
    return _style(fig, "Timeline of trials per worker")


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


# --------------------------------------------------------------------------
# campaigns


def _band(
    fig: go.Figure,
    x: list[float],
    mean: list[float],
    low: list[float],
    high: list[float],
    name: str,
    color: str,
) -> None:
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=high + low[::-1],
            fill="toself",
            fillcolor=color,
            opacity=0.18,
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=mean,
            mode="lines",
            name=name,
            legendgroup=name,
            line={"color": color, "width": 2},
        )
    )


def campaign_figures(data: CampaignData) -> list[tuple[str, str, go.Figure]]:
    out: list[tuple[str, str, go.Figure]] = []
    finals = [r.final_best for r in data.runs if r.final_best is not None]
    label = data.metric_label
    # Every objective metric lives in [0, 1]; a t-interval from few repeats
    # should not be drawn past it.
    lo_clip, hi_clip = (
        (0.0, 1.0) if finals and min(finals) >= 0 and max(finals) <= 1 else (-math.inf, math.inf)
    )

    def clip(values: list[float]) -> list[float]:
        return [min(max(v, lo_clip), hi_clip) for v in values]

    by_trial = go.Figure()
    by_time = go.Figure()
    for i, name in enumerate(data.samplers):
        color = _PALETTE[i % len(_PALETTE)]
        runs = [r for r in data.runs if r.sampler == name]
        mean, low, high = mean_interval([r.best_by_trial for r in runs])
        xs = list(range(1, len(mean) + 1))
        keep = [j for j, m in enumerate(mean) if not math.isnan(m)]
        _band(
            by_trial,
            [xs[j] for j in keep],
            [mean[j] for j in keep],
            clip([low[j] for j in keep]),
            clip([high[j] for j in keep]),
            name,
            color,
        )
        horizon = max((r.best_by_time[-1][0] for r in runs if r.best_by_time), default=0.0)
        if horizon > 0:
            grid = [horizon * k / 60 for k in range(61)]
            curves = [[_value_at(r.best_by_time, g) for g in grid] for r in runs]
            m, lo, hi = mean_interval(curves)
            keep = [j for j, v in enumerate(m) if not math.isnan(v)]
            _band(
                by_time,
                [grid[j] for j in keep],
                [m[j] for j in keep],
                clip([lo[j] for j in keep]),
                clip([hi[j] for j in keep]),
                name,
                color,
            )
    if data.target is not None:
        for fig in (by_trial, by_time):
            fig.add_hline(
                y=data.target,
                line_dash="dot",
                line_color="#555",
                annotation_text=f"target {data.target_fraction:.0%} of best",
            )
    by_trial.update_xaxes(title="finished trials")
    by_trial.update_yaxes(title=f"best {label} so far")
    out.append(
        (
            "by-trial",
            "Best so far against trials",
            _style(by_trial, f"Best {label} so far against trials (mean, 95% interval)"),
        )
    )
    by_time.update_xaxes(title="wall-clock seconds since the study's first trial")
    by_time.update_yaxes(title=f"best {label} so far")
    out.append(
        (
            "by-time",
            "Best so far against wall-clock time",
            _style(by_time, f"Best {label} so far against time (mean, 95% interval)"),
        )
    )
    box = go.Figure()
    for i, name in enumerate(data.samplers):
        box.add_trace(
            go.Box(
                y=data.summaries[name].final_values,
                name=name,
                boxpoints="all",
                jitter=0.3,
                marker_color=_PALETTE[i % len(_PALETTE)],
            )
        )
    box.update_yaxes(title=f"final best {label}")
    out.append(("final", f"Final best {label}", _style(box, f"Final best {label} per sampler")))
    suggest = [(n, data.summaries[n].suggest_median) for n in data.samplers]
    if any(v is not None for _, v in suggest):
        bar = go.Figure(
            go.Bar(
                x=[n for n, _ in suggest],
                y=[v or 0.0 for _, v in suggest],
                marker_color=_PALETTE[0],
                text=[f"{v * 1000:.1f} ms" if v is not None else "-" for _, v in suggest],
                textposition="outside",
            )
        )
        bar.update_yaxes(title="median seconds per suggestion", type="log")
        out.append(
            ("suggest", "Time per suggestion", _style(bar, "Time the sampler spends per trial"))
        )
    return out


def _value_at(points: list[tuple[float, float]], t: float) -> float:
    value = math.nan
    for when, v in points:
        if when > t:
            break
        value = v
    return value
