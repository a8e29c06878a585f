"""Campaign figures: best-so-far curves, final values, regret to a known optimum, cost."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from hpo.reports._campaign import CampaignData
from hpo.reports._figures import _PALETTE, _style
from hpo.reports._stats import mean_interval


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
    if data.regret:
        out.insert(0, ("regret-plot", "Regret to the known optimum", regret_figure(data)))
    return out


def regret_figure(data: CampaignData) -> go.Figure:
    """Mean regret per sampler at each budget, with its 95 % bootstrap interval."""
    fig = go.Figure()
    budgets = sorted({p.budget for p in data.regret})
    for i, name in enumerate(data.samplers):
        mine = sorted((p for p in data.regret if p.sampler == name), key=lambda p: p.budget)
        if not mine:
            continue
        # Side by side at each budget, so intervals do not hide one another.
        offset = (i - (len(data.samplers) - 1) / 2) * 0.08
        fig.add_trace(
            go.Scatter(
                x=[budgets.index(p.budget) + offset for p in mine],
                y=[p.mean for p in mine],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [p.high - p.mean for p in mine],
                    "arrayminus": [p.mean - p.low for p in mine],
                },
                mode="markers+lines",
                name=name,
                marker={"color": _PALETTE[i % len(_PALETTE)], "size": 9},
                line={"color": _PALETTE[i % len(_PALETTE)], "width": 1, "dash": "dot"},
                customdata=[[p.budget, len(p.values)] for p in mine],
                hovertemplate=f"{name}<br>%{{customdata[0]}} trials: %{{y:.3f}}"
                "<br>%{customdata[1]} repeats<extra></extra>",
            )
        )
    fig.update_xaxes(
        title="trials (budget)",
        range=[-0.5, len(budgets) - 0.5],
        tickmode="array",
        tickvals=list(range(len(budgets))),
        ticktext=[str(b) for b in budgets],
    )
    if data.regret_normalized:
        fig.add_hline(y=1.0, line_dash="dot", line_color="#555", annotation_text="random median")
        fig.add_hline(y=0.0, line_dash="dot", line_color="#27ae60", annotation_text="optimum")
        fig.update_yaxes(title="normalized regret (0 optimum, 1 random median)")
        title = "Normalized regret (Bayesmark): mean over repeats, 95% bootstrap interval"
    else:
        fig.update_yaxes(title="regret (distance to the optimum)")
        title = "Regret to the known optimum: mean over repeats, 95% bootstrap interval"
    return _style(fig, title)


def _value_at(points: list[tuple[float, float]], t: float) -> float:
    value = math.nan
    for when, v in points:
        if when > t:
            break
        value = v
    return value
