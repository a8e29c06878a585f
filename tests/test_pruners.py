from __future__ import annotations

import optuna
import pytest

from hpo.errors import ConfigError
from hpo.pruners import PRUNER_NAMES, make_pruner


def curves(trial: optuna.Trial) -> float:
    """Synthetic learning curves: even trials learn, odd ones stay near chance."""
    good = trial.number % 2 == 0
    f1 = 0.1
    for epoch in range(9):
        f1 = 0.2 + 0.08 * epoch if good else 0.1 + 0.002 * epoch
        trial.report(f1, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return f1


@pytest.mark.parametrize("name", ["median", "hyperband", "successive_halving"])
def test_pruners_stop_poor_curves(name: str) -> None:
    options = {"n_startup_trials": 2, "n_warmup_steps": 1} if name == "median" else {}
    study = optuna.create_study(
        direction="maximize",
        pruner=make_pruner(name, **options),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(curves, n_trials=16)
    states = {t.number: t.state for t in study.trials}
    pruned = [n for n, s in states.items() if s == optuna.trial.TrialState.PRUNED]
    assert pruned, name
    assert all(n % 2 == 1 for n in pruned if n >= 4), pruned
    complete = [n for n, s in states.items() if s == optuna.trial.TrialState.COMPLETE]
    assert any(n % 2 == 0 for n in complete)


def test_none_never_prunes() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner("none"))
    study.optimize(curves, n_trials=8)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_unknown_pruner_and_option() -> None:
    assert PRUNER_NAMES == ("none", "median", "hyperband", "successive_halving")
    with pytest.raises(ConfigError, match="unknown pruner 'asha'"):
        make_pruner("asha")
    with pytest.raises(ConfigError, match="pruner 'median': unknown option 'patience'; allowed"):
        make_pruner("median", patience=3)
