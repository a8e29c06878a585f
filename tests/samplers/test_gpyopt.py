from __future__ import annotations

import multiprocessing as mp
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.samplers import GPyOptSampler, make_sampler

SPACE = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.6),
    "ratio": FloatDistribution(0.0, 1.0, step=0.125),
    "units": IntDistribution(32, 512, step=32),
    "layers": IntDistribution(1, 200),
    "depth": IntDistribution(1, 64, log=True),
    "mixed": CategoricalDistribution([16, "auto", 0.5, None, True]),
}


def value(params: dict[str, Any]) -> float:
    import math

    return (
        -abs(math.log10(params["lr"]) + 3)
        - (params["dropout"] - 0.2) ** 2
        - abs(params["units"] - 256) / 512
        - abs(params["layers"] - 50) / 200
        + (0.2 if params["mixed"] == "auto" else 0.0)
    )


def run(sampler: optuna.samplers.BaseSampler, n: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(n):
        trial = study.ask(SPACE)
        study.tell(trial, value(trial.params))
    return study


def test_suggestions_stay_inside_every_kind_of_distribution() -> None:
    study = run(make_sampler("gpyopt", seed=0, n_initial=5), 14)
    for t in study.trials:
        for name, dist in SPACE.items():
            v = t.params[name]
            assert dist._contains(dist.to_internal_repr(v)), (name, v)
            if isinstance(dist, IntDistribution):
                assert isinstance(v, int)
    # The model-based part ran (past the random initial trials) and learned something.
    assert study.best_value > max(t.value for t in study.trials[:5]) - 1.0


def test_same_seed_same_history_same_suggestion() -> None:
    base = run(make_sampler("random", seed=2), 12)

    def next_params(seed: int) -> dict[str, Any]:
        study = optuna.create_study(
            direction="maximize", sampler=GPyOptSampler(seed=seed, n_initial=5)
        )
        for t in base.trials:
            study.add_trial(t)
        return study.ask(SPACE).params

    assert next_params(7) == next_params(7)


def test_minimize_direction_is_respected() -> None:
    sampler = GPyOptSampler(seed=0, n_initial=6)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -3, 3) - 1.0) ** 2, n_trials=16)
    assert study.best_value < 0.05


def _worker(url: str, seed: int, out: Any) -> None:
    sampler = make_sampler("gpyopt", seed=seed, n_initial=4)
    study = optuna.load_study(study_name="par", storage=url, sampler=sampler)
    trial = study.ask(SPACE)
    out.put(trial.params)  # left RUNNING on purpose: the others must see it as taken


@pytest.mark.postgres
def test_concurrent_workers_get_different_points(postgres_url: str) -> None:
    seed_study = optuna.create_study(study_name="par", storage=postgres_url, direction="maximize")
    for t in run(make_sampler("random", seed=5), 8).trials:
        seed_study.add_trial(t)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    # One after another, so each sees the previous ones RUNNING (the constant liar);
    # then four at once, which must not collide either.
    results = []
    for seed in (11, 11, 11, 11):
        p = ctx.Process(target=_worker, args=(postgres_url, seed, queue))
        p.start()
        results.append(queue.get(timeout=300))  # generous: CI machines may be loaded
        p.join(60)
    keys = {tuple(sorted((k, repr(v)) for k, v in r.items())) for r in results}
    assert len(keys) == 4, results
    procs = [ctx.Process(target=_worker, args=(postgres_url, 20 + i, queue)) for i in range(4)]
    for p in procs:
        p.start()
    parallel = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    keys = {tuple(sorted((k, repr(v)) for k, v in r.items())) for r in parallel}
    assert len(keys) == 4, parallel
