from __future__ import annotations

import optuna
import pytest

from hpo import keys
from hpo.errors import ConfigError
from hpo.samplers import SAMPLER_NAMES, make_sampler, sampler_options


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    n = trial.suggest_int("n", 1, 9, step=2)
    c = trial.suggest_categorical("c", ["a", "b", "c"])
    return -((x - 0.5) ** 2) - 0.1 * (n - 5) ** 2 + (0.3 if c == "b" else 0.0)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_each_sampler_runs_a_study(name: str) -> None:
    options = {"n_initial": 5} if name == "gpyopt" else {}
    if name in ("tpe", "gp"):
        options = {"n_startup_trials": 5}
    study = optuna.create_study(direction="maximize", sampler=make_sampler(name, seed=1, **options))
    study.optimize(objective, n_trials=12)
    assert len(study.trials) == 12
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert t.user_attrs[keys.SUGGEST_SECONDS] >= 0.0


def _good_trials(name: str, seed: int, n_trials: int, direction: str = "maximize") -> int:
    """Trials after the 5 random start-up ones that score above 0 (the maximum is 0.3).

    Above 0 needs c == "b", n == 5 and |x - 0.5| < 0.55: 1.8 % of random draws.
    """
    options: dict[str, int] = {"n_initial": 5} if name == "gpyopt" else {"n_startup_trials": 5}
    if name == "random":
        options = {}
    # GPy and GPyOpt may draw from NumPy's global generator: fix it so the
    # outcome does not depend on which tests ran before.
    import numpy as np

    np.random.seed(seed)
    sampler = make_sampler(name, seed=seed, **options)
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return sum(1 for t in study.trials[5:] if t.value is not None and t.value > 0)


# (sampler, seed, trials, good trials needed). Random search over 2,000 seeds: 20 trials
# give 2 or more good ones 3.4 % of the time, 3 or more 0.35 %; 30 trials give 4 or more
# 0.1 %. GPyOpt's expected improvement keeps probing the edges of x after it has found
# the maximum (seeds 1-4 found 2-3 good trials), so it is held to 2.
QUALITY = [("tpe", 6, 30, 4), ("gp", 1, 20, 3), ("gpyopt", 2, 20, 2)]


@pytest.mark.parametrize(("name", "seed", "n_trials", "needed"), QUALITY)
def test_each_model_based_sampler_beats_random_search(
    name: str, seed: int, n_trials: int, needed: int
) -> None:
    good = _good_trials(name, seed, n_trials)
    assert good >= needed, (
        f"{name} found {good} trials above 0 after its start-up trials; random search "
        f"reaches {needed} in a few % of seeds at most: it is not optimizing (or not "
        "in the study's direction)"
    )
    assert _good_trials("random", seed, n_trials) < needed  # the premise, same seed and budget


def test_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match="unknown sampler 'cmaes'; allowed: tpe, gp, gpyopt"):
        make_sampler("cmaes")
    with pytest.raises(ConfigError, match="sampler 'tpe': unknown option 'foo'; allowed: n_start"):
        make_sampler("tpe", foo=1)
    with pytest.raises(ConfigError, match="sampler 'random': unknown option 'x'; allowed: none"):
        make_sampler("random", x=1)
    with pytest.raises(ConfigError, match="acquisition 'PI' is not allowed; allowed: EI, MPI, LCB"):
        make_sampler("gpyopt", acquisition="PI")
    assert "acquisition" in sampler_options("gpyopt")


def test_same_seed_same_sequence() -> None:
    def run(seed: int) -> list[dict[str, object]]:
        study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed=seed))
        study.optimize(objective, n_trials=6)
        return [t.params for t in study.trials]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_enqueued_params_are_kept() -> None:
    study = optuna.create_study(direction="maximize", sampler=make_sampler("gpyopt", seed=0))
    study.enqueue_trial({"x": 0.25, "n": 3, "c": "a"})
    study.optimize(objective, n_trials=1)
    assert study.trials[0].params == {"x": 0.25, "n": 3, "c": "a"}
