"""Small statistics for campaign reports: intervals and multiple comparisons."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mean_interval(curves: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Mean and 95 % t-interval at each index over curves (NaN-aware, ragged)."""
    from scipy import stats

    length = max((len(c) for c in curves), default=0)
    mean, low, high = [], [], []
    for i in range(length):
        vals = np.array([c[i] if i < len(c) else c[-1] for c in curves if c], dtype=float)
        vals = vals[~np.isnan(vals)]
        if len(vals) == 0:
            mean.append(math.nan)
            low.append(math.nan)
            high.append(math.nan)
            continue
        m = float(vals.mean())
        if len(vals) > 1:
            t975 = float(stats.t.ppf(0.975, len(vals) - 1))
            half = t975 * float(vals.std(ddof=1)) / math.sqrt(len(vals))
        else:
            half = 0.0
        mean.append(m)
        low.append(m - half)
        high.append(m + half)
    return mean, low, high


def bootstrap_mean(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and 95 % percentile-bootstrap interval (resampling the repeats); seeded,
    so a report rebuilt from the same database shows the same interval."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return mean, float(low), float(high)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    Comparing k samplers pairwise makes k(k-1)/2 tests; without a correction
    one of six pairs of four equal samplers looks "significant" at 0.05 about
    a quarter of the time.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
