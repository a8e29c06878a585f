"""The contract every benchmark problem meets."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

Direction = Literal["minimize", "maximize"]


class Problem(abc.ABC):
    """A function with a known optimum that a study searches instead of training a model.

    ``distributions`` is the whole search space (a benchmark study searches
    exactly this space, so ``optimum`` is reachable); ``evaluate`` is
    deterministic, cheap and never imports a Keras backend; ``optimum`` is the
    best value ``evaluate`` can return in ``direction``, reached at
    ``best_params``. Samplers are compared by how close they get to it.
    """

    name: str
    direction: Direction

    @property
    @abc.abstractmethod
    def distributions(self) -> dict[str, BaseDistribution]:
        """Parameter name -> Optuna distribution, in a fixed order."""

    @property
    @abc.abstractmethod
    def optimum(self) -> float:
        """The best value over the whole space."""

    @abc.abstractmethod
    def best_params(self) -> dict[str, Any]:
        """One point where ``evaluate`` returns ``optimum``."""

    @abc.abstractmethod
    def evaluate(self, params: Mapping[str, Any]) -> float:
        """The problem's value at ``params`` (one value per distribution)."""

    def regret(self, value: float) -> float:
        """How far ``value`` is from the optimum (0 at the optimum, positive elsewhere)."""
        return value - self.optimum if self.direction == "minimize" else self.optimum - value
