"""A surface shaped like hpo's own 7-parameter design-card search space.

Branin and Hartmann-6 are continuous; hpo's real spaces mix log-scaled
floats, stepped integers and a categorical batch size. This smooth "validation
F1" over exactly that space (the one ``benchmarks/samplers.py`` times
suggestions in) tells how a sampler copes with the mix, with a known maximum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo.benchmarks._base import Direction, Problem

# Penalty of each batch size: 32 is best, 128 clearly worst.
_BATCH_PENALTY = {16: 0.05, 32: 0.0, 64: 0.04, 128: 0.12}


class DesignCard7d(Problem):
    """Maximum 1.0 at learning rate 10^-3.5, dropout 0.3, 256 units, L1 1e-6,
    L2 1e-4, batch size 32 and 40 unfrozen layers."""

    name = "design-card-7d"
    direction: Direction = "maximize"

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {
            "learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
            "dropout": FloatDistribution(0.0, 0.6),
            "dense_units": IntDistribution(32, 512, step=32),
            "l1": FloatDistribution(1e-7, 1e-2, log=True),
            "l2": FloatDistribution(1e-7, 1e-2, log=True),
            "batch_size": CategoricalDistribution([16, 32, 64, 128]),
            "unfrozen_layers": IntDistribution(0, 100, step=10),
        }

    @property
    def optimum(self) -> float:
        return 1.0

    def best_params(self) -> dict[str, Any]:
        return {
            "learning_rate": 10**-3.5,
            "dropout": 0.3,
            "dense_units": 256,
            "l1": 1e-6,
            "l2": 1e-4,
            "batch_size": 32,
            "unfrozen_layers": 40,
        }

    def evaluate(self, params: Mapping[str, Any]) -> float:
        # Each parameter scaled to about [-1, 1] around its best value; a positive
        # definite quadratic form (with one interaction), so 1.0 is the only maximum.
        lr = (math.log10(params["learning_rate"]) + 3.5) / 3
        drop = (params["dropout"] - 0.3) / 0.6
        units = (params["dense_units"] - 256) / 480
        l1 = (math.log10(params["l1"]) + 6) / 5
        l2 = (math.log10(params["l2"]) + 4) / 5
        layers = (params["unfrozen_layers"] - 40) / 100
        batch = _BATCH_PENALTY[int(params["batch_size"])]
        loss = 2.0 * lr**2 + drop**2 + units**2 + 0.3 * l1**2 + 0.6 * l2**2 + 1.5 * layers**2
        return float(1.0 - loss - batch - 0.3 * lr * layers)
