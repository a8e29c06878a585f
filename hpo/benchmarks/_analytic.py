"""Classic analytic test functions of global optimization (Branin, Hartmann-6).

Both are minimized; their optima come from the literature (Dixon and Szegő
1978; Surjanovic and Bingham's Virtual Library of Simulation Experiments),
with more digits computed at the published argmin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution

from hpo.benchmarks._base import Direction, Problem


class Branin(Problem):
    """Two dimensions, three global minima of 5/(4π) ≈ 0.397887."""

    name = "branin"
    direction: Direction = "minimize"

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {"x1": FloatDistribution(-5.0, 10.0), "x2": FloatDistribution(0.0, 15.0)}

    @property
    def optimum(self) -> float:
        return 5.0 / (4.0 * math.pi)

    def best_params(self) -> dict[str, Any]:
        return {"x1": math.pi, "x2": 2.275}

    def evaluate(self, params: Mapping[str, Any]) -> float:
        x1, x2 = float(params["x1"]), float(params["x2"])
        b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
        return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
# The published argmin (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
# refined with L-BFGS-B, so the value there equals ``optimum`` to 1e-15.
_H6_ARGMIN = (
    0.20168950968761765,
    0.15001069413863433,
    0.47687396963094986,
    0.27533242916768874,
    0.31165161370991157,
    0.6573005333899428,
)


class Hartmann6(Problem):
    """Six dimensions in the unit cube, six local minima, global minimum ≈ -3.32237."""

    name = "hartmann6"
    direction: Direction = "minimize"

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(6)}

    @property
    def optimum(self) -> float:
        return -3.322368011415514

    def best_params(self) -> dict[str, Any]:
        return {f"x{i}": v for i, v in enumerate(_H6_ARGMIN)}

    def evaluate(self, params: Mapping[str, Any]) -> float:
        x = np.array([float(params[f"x{i}"]) for i in range(6)])
        return float(-np.sum(_ALPHA * np.exp(-np.sum(_A * (x - _P) ** 2, axis=1))))
