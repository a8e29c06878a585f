"""Figure data that stays the same size however many trials a study has.

A study of 10,000 trials drawn point by point made a 592 MB page, 581 MB of
it Optuna's contour, whose grid has one row and one column per distinct
value of each parameter. Here the contour is a fixed grid of binned,
smoothed means, and scatter-like figures draw a thinned set of trials that
always holds the first, the last, the best and every trial that set a new
best (so a best-so-far line drawn through them is exact); figures say when
they show a subset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from hpo.results import is_feasible

MAX_POINTS = 2000
"""Trials drawn in the history, parallel-coordinate, slice and timeline figures."""
MAX_CURVES = 300
"""Per-epoch curves drawn."""
CONTOUR_GRID = 40
"""Cells per numeric axis of the contour, whatever the number of trials."""


def _complete(t: FrozenTrial) -> bool:
    return t.state == TrialState.COMPLETE and t.value is not None


def thin(trials: Sequence[FrozenTrial], limit: int, *, maximize: bool) -> list[FrozenTrial]:
    """At most ``limit`` trials, in number order, keeping what the eye looks for.

    Always kept: the first and the last trial, the best, and every complete
    trial that improved on all before it; the rest of the budget is spread
    evenly over the others.
    """
    ordered = sorted(trials, key=lambda t: t.number)
    if len(ordered) <= limit:
        return ordered
    keep = {0, len(ordered) - 1}
    best = math.nan
    for i, t in enumerate(ordered):
        if _complete(t):
            v = float(t.value)  # type: ignore[arg-type]
            if math.isnan(best) or (v > best if maximize else v < best):
                best = v
                keep.add(i)
    keep = set(sorted(keep, key=lambda i: (i not in (0, len(ordered) - 1), -i))[:limit])
    others = [i for i in range(len(ordered)) if i not in keep]
    room = limit - len(keep)
    if room > 0 and others:
        picks = np.linspace(0, len(others) - 1, num=min(room, len(others)))
        keep.update(others[int(p + 0.5)] for p in picks)
    return [ordered[i] for i in sorted(keep)]


def evenly(trials: Sequence[FrozenTrial], limit: int) -> list[FrozenTrial]:
    """At most ``limit`` trials spread evenly by number: an unbiased subset for statistics."""
    ordered = sorted(trials, key=lambda t: t.number)
    if len(ordered) <= limit:
        return ordered
    return [ordered[int(i + 0.5)] for i in np.linspace(0, len(ordered) - 1, num=limit)]


def shown_note(
    shown: int,
    total: int,
    what: str = "trials",
    how: str = "first, last, best, each new best, evenly spaced",
) -> str:
    """A title suffix saying a figure draws a subset, empty when it draws everything."""
    return "" if shown >= total else f" ({shown:,} of {total:,} {what} shown: {how})"


# --------------------------------------------------------------------------
# axes shared by slice and contour


@dataclass(frozen=True)
class Axis:
    """How one parameter is drawn: ``kind`` is linear, log or category."""

    name: str
    kind: str
    low: float = 0.0  # numeric: the observed range, in the drawn scale (log10 for log)
    high: float = 1.0
    labels: tuple[str, ...] = ()  # category: the choices, in order

    def position(self, value: object) -> float:
        """Where a value falls in [0, 1] (numeric) or its category's index."""
        if self.kind == "category":
            return float(self.labels.index(str(value)))
        v = math.log10(float(value)) if self.kind == "log" else float(value)  # type: ignore[arg-type]
        return 0.0 if self.high == self.low else (v - self.low) / (self.high - self.low)

    def value_at(self, position: float) -> float:
        v = self.low + position * (self.high - self.low)
        return 10**v if self.kind == "log" else v


def axis_of(name: str, trials: Sequence[FrozenTrial]) -> Axis:
    dists: list[BaseDistribution] = [t.distributions[name] for t in trials if name in t.params]
    if dists and isinstance(dists[-1], CategoricalDistribution):
        labels = [str(c) for c in dists[-1].choices]
        seen = {str(t.params[name]) for t in trials if name in t.params}
        return Axis(name, "category", labels=tuple(labels + sorted(seen - set(labels))))
    values = [float(t.params[name]) for t in trials if name in t.params]
    log = bool(
        dists and isinstance(dists[-1], (FloatDistribution, IntDistribution)) and dists[-1].log
    )
    scaled = [math.log10(v) for v in values if v > 0] if log else values
    if not scaled:
        return Axis(name, "linear")
    return Axis(name, "log" if log else "linear", min(scaled), max(scaled))


# --------------------------------------------------------------------------
# slice


@dataclass(frozen=True)
class SliceInfo:
    """Objective against each parameter, over a thinned set of complete trials."""

    axes: list[Axis]
    x: dict[str, list[object]]
    y: dict[str, list[float]]
    numbers: dict[str, list[int]]
    shown: int
    total: int


def slice_info(
    trials: Sequence[FrozenTrial], params: Sequence[str], *, maximize: bool
) -> SliceInfo:
    complete = [t for t in trials if _complete(t)]
    shown = thin(complete, MAX_POINTS, maximize=maximize)
    axes = [axis_of(p, complete) for p in params]
    xs: dict[str, list[object]] = {}
    ys: dict[str, list[float]] = {}
    ns: dict[str, list[int]] = {}
    for p in params:
        mine = [t for t in shown if p in t.params]
        xs[p] = [t.params[p] for t in mine]
        ys[p] = [float(t.value) for t in mine]  # type: ignore[arg-type]
        ns[p] = [t.number for t in mine]
    return SliceInfo(axes, xs, ys, ns, len(shown), len(complete))


# --------------------------------------------------------------------------
# contour


@dataclass(frozen=True)
class ContourInfo:
    """Mean objective on a fixed grid over two parameters, plus the trials drawn on it.

    ``z[j][i]`` is the smoothed mean over trials near cell (x ``i``, y ``j``):
    every complete trial counts, but the grid is ``CONTOUR_GRID`` cells per
    numeric axis (one per choice of a categorical) for any number of trials.
    """

    x: Axis
    y: Axis
    x_centers: list[object]
    y_centers: list[object]
    z: list[list[float | None]]
    points_x: list[object]
    points_y: list[object]
    points_value: list[float]
    best: tuple[object, object] | None
    shown: int
    total: int
    infeasible: list[int] = field(default_factory=list)  # shown trials that broke a constraint


def _centers(axis: Axis, cells: int) -> list[object]:
    if axis.kind == "category":
        return list(axis.labels)
    return [axis.value_at((i + 0.5) / cells) for i in range(cells)]


def contour_info(
    trials: Sequence[FrozenTrial],
    x_name: str,
    y_name: str,
    *,
    maximize: bool,
    grid: int = CONTOUR_GRID,
) -> ContourInfo:
    from scipy.ndimage import gaussian_filter

    complete = [t for t in trials if _complete(t) and x_name in t.params and y_name in t.params]
    x, y = axis_of(x_name, complete), axis_of(y_name, complete)
    nx = len(x.labels) if x.kind == "category" else grid
    ny = len(y.labels) if y.kind == "category" else grid

    def cell(axis: Axis, value: object, cells: int) -> int:
        pos = axis.position(value)
        return int(pos) if axis.kind == "category" else min(cells - 1, int(pos * cells))

    sums = np.zeros((ny, nx))
    counts = np.zeros((ny, nx))
    for t in complete:
        j, i = cell(y, t.params[y_name], ny), cell(x, t.params[x_name], nx)
        sums[j, i] += float(t.value)  # type: ignore[arg-type]
        counts[j, i] += 1
    # About one trial's spacing: a few trials fill the grid smoothly, many keep detail.
    spread = max(0.6, grid / math.sqrt(max(len(complete), 1)))
    sigma = (0.0 if y.kind == "category" else spread, 0.0 if x.kind == "category" else spread)
    smooth_sums = gaussian_filter(sums, sigma=sigma, mode="nearest")
    smooth_counts = gaussian_filter(counts, sigma=sigma, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(
            smooth_counts > 1e-3 * max(counts.max(), 1.0), smooth_sums / smooth_counts, np.nan
        )
    shown = thin(complete, MAX_POINTS, maximize=maximize)
    best = None
    if complete:
        top = (max if maximize else min)(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]
        best = (_label(x, top.params[x_name]), _label(y, top.params[y_name]))
    return ContourInfo(
        x,
        y,
        _centers(x, nx),
        _centers(y, ny),
        [[None if math.isnan(v) else float(v) for v in row] for row in z],
        [_label(x, t.params[x_name]) for t in shown],
        [_label(y, t.params[y_name]) for t in shown],
        [float(t.value) for t in shown],  # type: ignore[arg-type]
        best,
        len(shown),
        len(complete),
        [t.number for t in shown if not is_feasible(t)],
    )


def _label(axis: Axis, value: object) -> object:
    return str(value) if axis.kind == "category" else value


# --------------------------------------------------------------------------
# history, distribution, parallel coordinates


@dataclass(frozen=True)
class HistoryInfo:
    """Objective per trial (thinned) and the exact best-so-far step line."""

    numbers: list[int]
    values: list[float]
    best_numbers: list[int]  # where the best so far changed, and the last trial
    best_values: list[float]
    shown: int
    total: int
    infeasible: list[int] = field(default_factory=list)  # shown trials that broke a constraint


def history_info(trials: Sequence[FrozenTrial], *, maximize: bool) -> HistoryInfo:
    complete = sorted((t for t in trials if _complete(t)), key=lambda t: t.number)
    shown = thin(complete, MAX_POINTS, maximize=maximize)
    steps_n: list[int] = []
    steps_v: list[float] = []
    for t in complete:
        v = float(t.value)  # type: ignore[arg-type]
        if not is_feasible(t):
            continue  # never the best, so never on the best-so-far line
        if not steps_v or (v > steps_v[-1] if maximize else v < steps_v[-1]):
            steps_n.append(t.number)
            steps_v.append(v)
    if steps_n and steps_n[-1] != complete[-1].number:
        steps_n.append(complete[-1].number)
        steps_v.append(steps_v[-1])
    return HistoryInfo(
        [t.number for t in shown],
        [float(t.value) for t in shown],  # type: ignore[arg-type]
        steps_n,
        steps_v,
        len(shown),
        len(complete),
        [t.number for t in shown if not is_feasible(t)],
    )


EDF_POINTS = 100


@dataclass(frozen=True)
class EdfInfo:
    """Share of complete trials with a value at or below each of ``EDF_POINTS`` values."""

    x: list[float]
    y: list[float]
    total: int


def edf_info(trials: Sequence[FrozenTrial]) -> EdfInfo:
    values = np.sort([float(t.value) for t in trials if _complete(t)])  # type: ignore[arg-type]
    if len(values) == 0:
        return EdfInfo([], [], 0)
    x = np.linspace(values[0], values[-1], EDF_POINTS)
    y = np.searchsorted(values, x, side="right") / len(values)
    return EdfInfo(x.tolist(), y.tolist(), len(values))


@dataclass(frozen=True)
class ParallelInfo:
    """One line per (thinned) complete trial across the objective and each parameter.

    Numeric values are in their drawn scale (log10 for log parameters), a
    categorical's values are its choice index with the choices as tick labels.
    """

    axes: list[Axis]
    columns: dict[str, list[float]]
    values: list[float]
    shown: int
    total: int


def parallel_info(
    trials: Sequence[FrozenTrial], params: Sequence[str], *, maximize: bool
) -> ParallelInfo:
    complete = [t for t in trials if _complete(t) and all(p in t.params for p in params)]
    shown = thin(complete, MAX_POINTS, maximize=maximize)
    axes = [axis_of(p, complete) for p in params]
    columns: dict[str, list[float]] = {}
    for axis in axes:
        raw = [t.params[axis.name] for t in shown]
        if axis.kind == "category":
            columns[axis.name] = [float(axis.labels.index(str(v))) for v in raw]
        elif axis.kind == "log":
            columns[axis.name] = [math.log10(float(v)) for v in raw]
        else:
            columns[axis.name] = [float(v) for v in raw]
    values = [float(t.value) for t in shown]  # type: ignore[arg-type]
    return ParallelInfo(axes, columns, values, len(shown), len(complete))


IMPORTANCE_TRIALS = 3000
"""PED-ANOVA runs on at most this many complete trials, spread evenly over the study."""
