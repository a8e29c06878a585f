"""What a running trial tells its listeners after each epoch.

Kept apart from the objective so that the terminal views (``hpo.console``)
and training can name the event without importing the objective and, through
it, the search space and storage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class EpochEvent:
    trial: int
    epoch: int  # 0-based, across both phases
    total_epochs: int
    f1: float  # the value of objective.metric (macro F1 unless the study says otherwise)


EpochListener = Callable[[EpochEvent], None]

__all__ = ["EpochEvent", "EpochListener"]
