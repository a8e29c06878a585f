"""Figure data of large studies stays bounded, and thinning keeps what matters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo.html import figure_json
from hpo.reports import load_study_data, study_figures, write_study_report
from hpo.reports._bounded import (
    CONTOUR_GRID,
    MAX_POINTS,
    contour_info,
    evenly,
    history_info,
    parallel_info,
    thin,
)
from tests.reports.factories import build_study

SPACE = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.6),
    "batch": CategoricalDistribution([16, 32, 64]),
}


def trials(n: int, seed: int = 0) -> list[FrozenTrial]:
    """Complete trials (every tenth pruned) with a noisy bowl as the objective."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params = {
            "lr": float(10 ** rng.uniform(-5, -1)),
            "dropout": float(rng.uniform(0, 0.6)),
            "batch": [16, 32, 64][i % 3],
        }
        value = -abs(math.log10(params["lr"]) + 3) - (params["dropout"] - 0.2) ** 2
        pruned = i % 10 == 9
        t = create_trial(
            params=params,
            distributions=SPACE,
            value=None if pruned else value + float(rng.normal(0, 0.05)),
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
        )
        t.number = i
        out.append(t)
    return out


def records(ts: list[FrozenTrial]) -> list[int]:
    """Numbers of the complete trials that beat every earlier one (maximize)."""
    best, out = -math.inf, []
    for t in ts:
        if t.state == TrialState.COMPLETE and t.value is not None and t.value > best:
            best, out = t.value, [*out, t.number]
    return out


def test_thinning_keeps_first_last_best_and_every_new_best() -> None:
    ts = trials(5000)
    kept = thin(ts, 300, maximize=True)
    numbers = [t.number for t in kept]
    assert len(kept) <= 300 and numbers == sorted(numbers)
    best = max((t for t in ts if t.value is not None), key=lambda t: t.value or 0.0)
    assert {0, 4999, best.number} <= set(numbers)
    assert set(records(ts)) <= set(numbers)
    gaps = np.diff(numbers)
    assert gaps.max() < 3 * 5000 / 300  # the rest spread evenly, no long hole
    assert thin(ts[:50], 300, maximize=True) == ts[:50]  # small studies: everything
    worst = thin(ts, 300, maximize=False)
    assert min((t for t in ts if t.value is not None), key=lambda t: t.value or 0.0) in worst


def test_evenly_spread_subset_for_statistics() -> None:
    ts = trials(1000)
    sub = evenly(ts, 100)
    assert len(sub) == 100 and sub[0].number == 0 and sub[-1].number == 999
    assert set(np.diff([t.number for t in sub])) <= {10, 11}


def test_history_best_line_is_exact_on_the_thinned_points() -> None:
    ts = trials(8000)
    info = history_info(ts, maximize=True)
    assert info.shown <= MAX_POINTS and info.total == 7200
    assert info.best_numbers[:-1] == records(ts)
    complete = [t for t in ts if t.value is not None]
    assert info.best_values[-1] == max(t.value or 0.0 for t in complete)
    assert info.best_numbers[-1] == complete[-1].number


@pytest.mark.parametrize("n", [30, 6000])
def test_contour_grid_has_a_fixed_size(n: int) -> None:
    ts = trials(n)
    info = contour_info(ts, "lr", "dropout", maximize=True)
    assert len(info.z) == CONTOUR_GRID and all(len(row) == CONTOUR_GRID for row in info.z)
    assert len(info.x_centers) == len(info.y_centers) == CONTOUR_GRID
    assert info.x.kind == "log" and info.y.kind == "linear"
    assert all(v is not None for row in info.z for v in row)  # smoothed over empty cells
    assert len(info.points_x) == info.shown <= MAX_POINTS
    best = max((t for t in ts if t.value is not None), key=lambda t: t.value or 0.0)
    assert info.best == (best.params["lr"], best.params["dropout"])
    # Where the good trials are, the surface is high: the best cell is near lr 1e-3.
    _, i = np.unravel_index(np.nanargmax(np.array(info.z, dtype=float)), (CONTOUR_GRID,) * 2)
    assert abs(math.log10(float(info.x_centers[i])) + 3) < 1.0  # type: ignore[arg-type]
    cat = contour_info(ts, "batch", "lr", maximize=True)
    assert len(cat.z) == CONTOUR_GRID and all(len(row) == 3 for row in cat.z)
    assert cat.x_centers == ["16", "32", "64"]


def test_parallel_coordinates_of_a_large_study_are_thinned() -> None:
    info = parallel_info(trials(6000), ["lr", "batch"], maximize=True)
    assert info.shown <= MAX_POINTS and info.total == 5400
    assert len(info.values) == len(info.columns["lr"]) == info.shown
    assert set(info.columns["batch"]) <= {0.0, 1.0, 2.0}
    assert min(info.columns["lr"]) >= -5 and max(info.columns["lr"]) <= -1  # log10 scale


def test_a_10000_trial_report_stays_small(tmp_path: Path) -> None:
    """592 MB before (581 MB of it the contour); every figure's data is bounded now."""
    storage = optuna.storages.InMemoryStorage()
    build_study(storage, "big", n_trials=10_000, seed=1)
    data = load_study_data(storage, "big")
    sizes = {fid: len(figure_json(fig)) for fid, _, fig in study_figures(data)}
    assert set(sizes) >= {"history", "curves", "parallel", "slice", "contour", "edf", "timeline"}
    assert max(sizes.values()) < 600_000, sizes
    assert sum(sizes.values()) < 2_000_000, sizes
    page = write_study_report(storage, "big", tmp_path / "big.html")
    assert page.stat().st_size < 20_000_000
    html = page.read_text()
    assert f"of {len(data.completed):,} trials shown" in html  # figures say they draw a subset
