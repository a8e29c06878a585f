"""Optuna distributions <-> the unit cube a Gaussian process is fitted in.

Kept apart from the GPyOpt sampler so the mapping (log scales, integer and
stepped ranges, categoricals as one-hot) can be read and tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


class UnitSpace:
    """Optuna distributions <-> rows the GP works on.

    A trial's parameters encode to one value per parameter in the space's own
    units (log scales in log space, a categorical's index): what the sampler
    fits on and suggests. The GP sees them in the unit cube (``to_unit``):
    one column per number, one per choice of a categorical (one-hot), so the
    fit is equally conditioned whatever a range's width. ``project`` moves any
    unit row onto the nearest point the space allows, so what the acquisition
    scores is what the trial gets.
    """

    def __init__(self, space: dict[str, BaseDistribution]) -> None:
        self.names = sorted(space)
        self.space = space
        self.columns: dict[str, slice] = {}
        self._range: dict[str, tuple[float, float]] = {}  # (low, width) in encoded units
        width = 0
        for name in self.names:
            dist = space[name]
            k = len(dist.choices) if isinstance(dist, CategoricalDistribution) else 1
            self.columns[name] = slice(width, width + k)
            width += k
            if isinstance(dist, (FloatDistribution, IntDistribution)):
                lo, hi = (
                    (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
                )
                self._range[name] = (float(lo), float(hi) - float(lo) or 1.0)
        self.dim = width

    def encode(self, params: dict[str, Any]) -> list[float]:
        row: list[float] = []
        for name in self.names:
            dist, value = self.space[name], params[name]
            if isinstance(dist, CategoricalDistribution):
                row.append(float(dist.to_internal_repr(value)))
            elif isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log:
                row.append(math.log(value))
            else:
                row.append(float(value))
        return row

    def decode(self, x: Sequence[float] | np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, v in zip(self.names, x, strict=True):
            dist = self.space[name]
            if isinstance(dist, CategoricalDistribution):
                out[name] = dist.choices[int(np.clip(round(v), 0, len(dist.choices) - 1))]
                continue
            value = float(self._values(name, np.array([float(v)]))[0])
            out[name] = round(value) if isinstance(dist, IntDistribution) else value
        return out

    def _values(self, name: str, t: np.ndarray) -> np.ndarray:
        """Encoded values of a number in the distribution's own units, on its grid."""
        dist = self.space[name]
        assert isinstance(dist, (FloatDistribution, IntDistribution))
        v = np.clip(np.exp(t) if dist.log else t, dist.low, dist.high)
        if dist.step is not None:
            k = np.round((v - dist.low) / dist.step)
            v = np.minimum(dist.low + k * dist.step, dist.high)
        return np.asarray(v, dtype=float)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        z = np.zeros((len(x), self.dim))
        for i, name in enumerate(self.names):
            col = self.columns[name]
            if name in self._range:
                lo, width = self._range[name]
                z[:, col.start] = (x[:, i] - lo) / width
            else:
                z[np.arange(len(x)), col.start + np.round(x[:, i]).astype(int)] = 1.0
        return z

    def from_unit(self, z: np.ndarray) -> np.ndarray:
        x = np.zeros((len(z), len(self.names)))
        for i, name in enumerate(self.names):
            col = self.columns[name]
            if name in self._range:
                lo, width = self._range[name]
                x[:, i] = lo + np.clip(z[:, col.start], 0.0, 1.0) * width
            else:
                x[:, i] = np.argmax(z[:, col], axis=1)
        return x

    def project(self, z: np.ndarray) -> np.ndarray:
        """Unit rows moved onto the space: grids and integers rounded, one category each."""
        x = self.from_unit(z)
        for i, name in enumerate(self.names):
            dist = self.space[name]
            if isinstance(dist, (FloatDistribution, IntDistribution)):
                v = self._values(name, x[:, i])
                x[:, i] = np.log(v) if dist.log else v
        return self.to_unit(x)

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Feasible unit rows drawn uniformly (log scales uniform in log space)."""
        z = rng.random((n, self.dim))
        for name in self.names:
            col = self.columns[name]
            if name not in self._range:
                k = col.stop - col.start
                z[:, col] = np.eye(k)[rng.integers(0, k, n)]
        return self.project(z)

    def perturb(self, rng: np.random.Generator, z: np.ndarray, scale: float) -> np.ndarray:
        """Local moves: Gaussian steps in numeric columns, sometimes another category."""
        moved = np.clip(z + rng.normal(size=z.shape) * scale, 0.0, 1.0)
        switch = min(0.5, 2.0 * scale)
        for name in self.names:
            col = self.columns[name]
            if name not in self._range:
                k = col.stop - col.start
                block = np.array(z[:, col], copy=True)
                flip = rng.random(len(z)) < switch
                block[flip] = np.eye(k)[rng.integers(0, k, int(flip.sum()))]
                moved[:, col] = block
        return self.project(moved)
