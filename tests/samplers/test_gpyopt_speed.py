"""GPyOpt on spaces with wide integer ranges: valid values, and honest timings."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpo.samplers import GPyOptSampler
from tests.conftest import REPO

# The design card's kinds with unstepped and log-scaled integers.
WIDE = {
    "learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
    "dropout": FloatDistribution(0.0, 0.6),
    "dense_units": IntDistribution(32, 1024, log=True),
    "l2": FloatDistribution(1e-7, 1e-2, log=True),
    "ratio": FloatDistribution(0.0, 1.0, step=0.05),
    "batch_size": CategoricalDistribution([16, 32, 64, 128]),
    "unfrozen_layers": IntDistribution(0, 100),
}


def score(p: dict[str, Any]) -> float:
    return (
        1.0
        - (math.log10(p["learning_rate"]) + 3.5) ** 2 / 4
        - (p["dropout"] - 0.3) ** 2
        - (math.log2(p["dense_units"]) - 8) ** 2 / 25
        - ((p["unfrozen_layers"] - 40) / 100) ** 2
        - (0.1 if p["batch_size"] == 128 else 0.0)
    )


def test_wide_space_suggestions_are_inside_every_distribution() -> None:
    study = optuna.create_study(direction="maximize", sampler=GPyOptSampler(seed=1, n_initial=8))
    for _ in range(16):
        trial = study.ask(WIDE)
        study.tell(trial, score(trial.params))
    model_based = study.trials[8:]
    for t in study.trials:
        for name, dist in WIDE.items():
            value = t.params[name]
            assert dist._contains(dist.to_internal_repr(value)), (t.number, name, value)
            if isinstance(dist, IntDistribution):
                assert isinstance(value, int), (name, value)
    # Optuna replaces a relative value outside its distribution by a random one, so
    # ask the sampler directly as well: its own values must be valid.
    sampler = GPyOptSampler(seed=2, n_initial=8)
    for k in range(3):
        probe = create_trial(state=TrialState.RUNNING, params={}, distributions={})
        probe.number = len(study.trials) + k
        suggested = sampler.sample_relative(study, probe, WIDE)
        assert set(suggested) == set(WIDE)
        for name, dist in WIDE.items():
            value = suggested[name]
            assert dist._contains(dist.to_internal_repr(value)), (name, value)
            assert isinstance(value, int) or not isinstance(dist, IntDistribution), (name, value)
    # The GP spreads over the integer range instead of sticking to a grid of its own.
    assert len({t.params["unfrozen_layers"] for t in model_based}) >= 4
    assert max(t.value or 0.0 for t in model_based) > max(t.value or 0.0 for t in study.trials[:8])


def test_suggestion_restores_blas_threads() -> None:
    """The GP runs on one BLAS thread; the process keeps its own setting afterwards."""
    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    study = optuna.create_study(direction="maximize", sampler=GPyOptSampler(seed=0, n_initial=3))
    for _ in range(4):
        trial = study.ask(WIDE)
        study.tell(trial, score(trial.params))
    after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert after == before


_FRESH = textwrap.dedent(
    """
    import json, sys, time
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from tests.samplers.test_gpyopt_speed import WIDE, score
    from hpo import keys
    from hpo.samplers import make_sampler

    assert "GPy" not in sys.modules and "GPyOpt" not in sys.modules
    start = time.perf_counter()
    sampler = make_sampler("gpyopt", seed=0)  # timed, as studies use it
    made = time.perf_counter() - start
    imported = "GPy" in sys.modules
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(11):
        trial = study.ask(WIDE)
        study.tell(trial, score(trial.params))
    seconds = [t.user_attrs[keys.SUGGEST_SECONDS] for t in study.trials]
    print(json.dumps({"made": made, "imported": imported, "seconds": seconds}))
    """
)


def test_first_gp_suggestion_does_not_pay_the_import() -> None:
    """GPy's import takes seconds; it happens when the sampler is made, so the first
    model-based trial's recorded ``suggest_seconds`` is the suggestion alone."""
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["imported"], "GPy was not imported when the sampler was made"
    first_gp = out["seconds"][10]  # trials 0-9 are the random start-up
    # Generous: a loaded machine slows both the import and the suggestion alike.
    assert first_gp < max(1.5, 0.3 * out["made"]), out


def test_unit_space_projects_onto_what_each_distribution_allows() -> None:
    import numpy as np

    from hpo.samplers._unit_space import UnitSpace

    space = UnitSpace(WIDE)
    rng = np.random.default_rng(0)
    z = space.project(rng.random((200, space.dim)))
    assert z.min() >= 0.0 and z.max() <= 1.0
    assert np.allclose(space.project(z), z)  # already on the space: unchanged
    for row in z:
        params = space.decode(space.from_unit(row[None])[0])
        for name, dist in WIDE.items():
            assert dist._contains(dist.to_internal_repr(params[name])), (name, params[name])
        # Encoding what was decoded gives the same unit row back.
        again = space.to_unit(np.array([space.encode(params)]))[0]
        assert np.allclose(again, row), params
    batch = space.columns["batch_size"]
    assert set(z[:, batch].sum(axis=1)) == {1.0}  # exactly one choice per row
    layers = space.columns["unfrozen_layers"].start
    assert len(set(np.round(z[:, layers] * 100, 9))) > 50  # every integer 0..100 reachable
