"""What a study's trials add up to: finished counts and the best trial.

Every command, report and worker reads these facts through here, so "finished"
and "best" mean one thing everywhere (the budget, ``hpo best``, reports and
``hpo export`` would otherwise disagree on an edge case).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    import optuna

FINISHED: tuple[TrialState, ...] = (TrialState.COMPLETE, TrialState.PRUNED)
"""States that count against a study's trial budget."""


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def is_maximize(study: optuna.Study) -> bool:
    return study.directions[0] == StudyDirection.MAXIMIZE


def violations(trial: FrozenTrial) -> dict[str, float]:
    """The constraints a trial broke (Optuna's convention: a value > 0 is violated)."""
    return {name: v for name, v in trial.constraints.items() if v > 0}


def is_feasible(trial: FrozenTrial) -> bool:
    """True unless a stored constraint is violated; a trial without constraints is feasible."""
    return not violations(trial)


def best_of(trials: Iterable[FrozenTrial], *, maximize: bool = True) -> FrozenTrial | None:
    """The best feasible COMPLETE trial with a value; ties go to the earliest trial.

    A trial that broke a constraint (a recall floor, a size cap) is never best,
    however well it scored: a clinic could not use it.
    """
    best: FrozenTrial | None = None
    for t in trials:
        if t.state != TrialState.COMPLETE or t.value is None or not is_feasible(t):
            continue
        better = best is None or best.value is None
        if not better and best is not None and best.value is not None:
            better = t.value > best.value if maximize else t.value < best.value
        if better:
            best = t
    return best


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's best feasible complete trial in its direction, or None before the first."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return best_of(complete, maximize=is_maximize(study))


def no_best_reason(study: optuna.Study) -> str:
    """Why ``best_trial`` is None: nothing complete, or every complete trial broke a constraint."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return "no completed trial yet"
    return (
        f"no feasible trial yet: all {len(complete)} complete trials broke a constraint "
        "(objective.constraints)"
    )
