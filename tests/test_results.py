"""hpo.results: what "finished" and "best" mean for the budget, ``hpo best``, reports, export."""

from __future__ import annotations

from typing import Literal

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo import keys
from hpo.results import (
    FINISHED,
    best_of,
    best_trial,
    finished_count,
    is_feasible,
    is_maximize,
    violations,
)


def trials(*spec: tuple[TrialState, float | None]) -> list[FrozenTrial]:
    out = []
    for number, (state, value) in enumerate(spec):
        t = create_trial(state=state, value=value if state == TrialState.COMPLETE else None)
        t.number = number
        out.append(t)
    return out


C, P, F, R = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING


def test_finished_means_complete_or_pruned() -> None:
    assert set(FINISHED) == {C, P}
    study = optuna.create_study()
    for state, value in ((C, 1.0), (P, None), (F, None), (C, 2.0), (P, None)):
        study.add_trial(create_trial(state=state, value=value))
    running = study.ask()  # RUNNING: not finished, does not count against the budget
    assert running.number == 5
    waiting = optuna.create_study()
    waiting.enqueue_trial({})  # WAITING: not finished either
    assert finished_count(study) == 4, "the budget counts COMPLETE and PRUNED, nothing else"
    assert finished_count(waiting) == 0


@pytest.mark.parametrize(
    ("maximize", "expected"),
    [(True, 3), (False, 1)],
    ids=["maximize-highest", "minimize-lowest"],
)
def test_best_is_direction_aware(maximize: bool, expected: int) -> None:
    spec = [(P, None), (C, 0.5), (F, None), (C, 0.9), (R, None), (C, 0.7)]
    best = best_of(trials(*spec), maximize=maximize)
    assert best is not None and best.number == expected, best


def test_ties_go_to_the_earliest_trial_in_both_directions() -> None:
    spec = [(C, 0.4), (C, 0.9), (C, 0.9), (C, 0.4)]
    high = best_of(trials(*spec), maximize=True)
    low = best_of(trials(*spec), maximize=False)
    assert high is not None and high.number == 1, "a later equal value must not take over"
    assert low is not None and low.number == 0


def test_only_complete_trials_with_a_value_can_be_best() -> None:
    # A pruned trial's last reported value may be higher than any complete one: ignored.
    pruned = create_trial(state=P, intermediate_values={0: 0.99})
    pruned.number = 0
    complete = create_trial(state=C, value=0.2)
    complete.number = 1
    assert best_of([pruned, complete], maximize=True) is complete
    assert best_of(trials((P, None), (F, None), (R, None)), maximize=True) is None
    assert best_of([], maximize=False) is None


def test_zero_and_negative_values_are_values() -> None:
    spec = [(C, -1.0), (C, 0.0), (C, -0.5)]
    high = best_of(trials(*spec), maximize=True)
    low = best_of(trials(*spec), maximize=False)
    assert high is not None and high.number == 1
    assert low is not None and low.number == 0


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_best_trial_of_a_stored_study(
    sqlite_url: str, direction: Literal["maximize", "minimize"]
) -> None:
    study = optuna.create_study(storage=sqlite_url, direction=direction)
    assert best_trial(study) is None
    for state, value in ((C, 0.3), (P, None), (C, 0.8), (F, None), (C, 0.1)):
        study.add_trial(
            create_trial(state=state, value=value, user_attrs={keys.METRICS: {"roc_auc": 0.5}})
        )
    chosen = best_trial(study)
    assert is_maximize(study) is (direction == "maximize")
    assert chosen is not None
    assert (chosen.number, chosen.value) == ((2, 0.8) if direction == "maximize" else (4, 0.1))
    assert chosen.number == study.best_trial.number  # Optuna agrees


def constrained(value: float, violation: float | None) -> FrozenTrial:
    """A complete trial with a recall-floor constraint value (> 0 means violated)."""
    attrs = {} if violation is None else {"constraints:min_recall:rare": violation}
    return create_trial(state=C, value=value, system_attrs=attrs)


def test_an_infeasible_trial_is_never_best_however_high_it_scored() -> None:
    spec = [(0.9, 0.2), (0.6, -0.1), (0.7, 0.0), (0.95, 0.01)]
    listed = []
    for number, (value, violation) in enumerate(spec):
        t = constrained(value, violation)
        t.number = number
        listed.append(t)
    best = best_of(listed, maximize=True)
    assert best is not None and best.number == 2, "0.0 is feasible (Optuna: <= 0)"
    assert best_of(listed[:1] + listed[3:], maximize=True) is None, "all infeasible: no best"
    assert violations(listed[0]) == {"min_recall:rare": 0.2}
    assert is_feasible(listed[2]) and is_feasible(constrained(0.1, None))


def test_best_trial_of_a_stored_study_skips_set_constraint_violations(sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url, direction="maximize")
    for value, floor_gap in ((0.7, -0.05), (0.9, 0.3), (0.8, 0.0)):
        trial = study.ask()
        trial.set_constraint("min_recall:rare", floor_gap)  # what hpo.objective stores
        study.tell(trial, value)
    chosen = best_trial(study)
    assert chosen is not None and (chosen.number, chosen.value) == (2, 0.8)


def test_a_pruned_trial_with_a_value_is_never_best() -> None:
    """Optuna stores a pruned trial's last reported value as its value."""
    study = optuna.create_study(direction="maximize")
    pruned = study.ask()
    pruned.report(0.99, 0)
    study.tell(pruned, state=P)
    study.add_trial(create_trial(value=0.2))
    assert study.trials[0].value == 0.99  # the premise
    for best in (best_trial(study), best_of(study.trials, maximize=True)):
        assert best is not None and best.number == 1, "the pruned trial's 0.99 was taken"


def test_why_there_is_no_best_trial() -> None:
    from hpo.results import no_best_reason

    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(state=F))
    study.add_trial(create_trial(state=P))
    assert no_best_reason(study) == "no completed trial yet"
    for value in (0.9, 0.8):
        study.add_trial(create_trial(value=value, system_attrs={"constraints": [0.1]}))
    assert best_trial(study) is None
    assert no_best_reason(study) == (
        "no feasible trial yet: all 2 complete trials broke a constraint (objective.constraints)"
    )
