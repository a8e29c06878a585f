"""What ``pruner: median|hyperband|successive_halving`` builds without options.

The README promises: median with 5 start-up trials and 2 warm-up epochs;
hyperband and successive halving with a minimum resource of 1 epoch and a
reduction factor of 3. Checked by decisions on the same learning curves as
Optuna's pruners built with those settings, and by the median pruner's exact
behaviour (never before 5 finished trials, never before epoch 2).
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest

from hpo.pruners import make_pruner


def curve(number: int, epoch: int) -> float:
    """Trials 0-3 learn; from 4 on, even trials stay near chance, every fourth learns slowly."""
    if number >= 4 and number % 2 == 0:
        return 0.1 + 0.001 * epoch
    if number >= 4 and number % 4 == 1:
        return 0.3 + 0.02 * epoch
    return 0.3 + 0.06 * epoch


def decisions(pruner: optuna.pruners.BasePruner, n_trials: int = 14) -> dict[int, int | None]:
    """Trial number -> the epoch it was pruned at (None: it completed)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="curves",  # Hyperband's brackets hash the study name
        direction="maximize",
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    out: dict[int, int | None] = {}
    for _ in range(n_trials):
        trial = study.ask()
        out[trial.number] = None
        value = 0.0
        for epoch in range(10):
            value = curve(trial.number, epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                out[trial.number] = epoch
                break
        if out[trial.number] is None:
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return out


def test_median_defaults() -> None:
    got = decisions(make_pruner("median"))
    # Trial 4 is poor but only 4 trials have finished: 5 start-up trials protect it.
    assert got[4] is None, f"trial 4 pruned at epoch {got[4]} before 5 trials finished"
    # From trial 5 on, trials below the median are pruned at epoch 2: 0 and 1 are warm-up.
    poor = [n for n in range(5, 14) if n % 2 == 0 or n % 4 == 1]
    assert {n: got[n] for n in poor} == dict.fromkeys(poor, 2), got
    assert all(got[n] is None for n in range(14) if n not in poor), got


EXPLICIT: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "median": lambda: optuna.pruners.MedianPruner(
        n_startup_trials=5, n_warmup_steps=2, interval_steps=1, n_min_trials=1
    ),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=1, reduction_factor=3, min_early_stopping_rate=0
    ),
}
OTHER: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=3, reduction_factor=3),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=1, reduction_factor=2
    ),
}


@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_defaults_decide_like_the_documented_settings(name: str) -> None:
    ours = decisions(make_pruner(name))
    assert ours == decisions(EXPLICIT[name]()), f"'{name}' defaults differ from the README's"
    assert any(epoch is not None for epoch in ours.values()), "the scenario prunes nothing"
    assert ours != decisions(OTHER[name]()), "the scenario cannot tell other settings apart"
