"""What ``sampler: tpe`` builds when the study file gives no options.

The README promises Optuna 5's TPE defaults: multivariate, with the constant
liar, 10 random start-up trials. Checked by behaviour: the sampler makes the
same suggestions as Optuna's TPESampler built with those settings, and other
suggestions when any one of them is changed.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.samplers import TPESampler

from hpo.samplers import make_sampler


def objective(params: dict[str, Any]) -> float:
    return -((params["x"] - 0.3) ** 2) - 0.05 * (params["n"] - 4) ** 2


def suggestions(sampler: optuna.samplers.BaseSampler) -> list[dict[str, Any]]:
    """Two workers' worth: each trial is asked while the one before it is still running."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    seen = []
    for _ in range(12):
        first = study.ask()
        first.suggest_float("x", -1.0, 1.0)
        first.suggest_int("n", 0, 8)
        second = study.ask()  # `first` is RUNNING now: the constant liar's case
        second.suggest_float("x", -1.0, 1.0)
        second.suggest_int("n", 0, 8)
        for trial in (first, second):
            seen.append(dict(trial.params))
            study.tell(trial, objective(trial.params))
    return seen


def test_tpe_defaults_are_multivariate_with_constant_liar() -> None:
    ours = suggestions(make_sampler("tpe", seed=5, timed=False))
    documented = {"multivariate": True, "constant_liar": True, "n_startup_trials": 10}
    assert ours == suggestions(TPESampler(seed=5, **documented)), (
        "sampler 'tpe' without options is not Optuna's TPE with multivariate=True, "
        "constant_liar=True, n_startup_trials=10"
    )
    # Each setting shows in this scenario, so a changed default would be caught.
    for changed in (
        {"multivariate": False},
        {"constant_liar": False},
        {"n_startup_trials": 6},
    ):
        other = suggestions(TPESampler(seed=5, **{**documented, **changed}))
        assert other != ours, f"{changed} gives the same suggestions: the check is blind to it"


def test_options_in_the_study_file_override_the_defaults() -> None:
    ours = suggestions(make_sampler("tpe", seed=5, timed=False, constant_liar=False))
    assert ours == suggestions(TPESampler(seed=5, multivariate=True, constant_liar=False))
