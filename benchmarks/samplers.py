"""Sampler benchmark: time per suggestion and optimization quality.

    python benchmarks/samplers.py            # full run (about 25 min on 2 cores)
    python benchmarks/samplers.py --quick    # smoke run

Prints, for each sampler, the median time per suggestion at 25, 100 and 250
completed trials in the 7-parameter design-card space, and the best value
reached (median over seeds, with min-max) at fixed budgets on Branin
(minimum 0.397887), Hartmann-6 (minimum -3.32237) and a 7-parameter
mixed-type surface shaped like the design card's space (maximum 1.0).
``gpyopt-stock`` is GPyOpt's own BayesianOptimization with its defaults
(five GP restarts, L-BFGS acquisition search) behind the same interface, for
comparison with our ``gpyopt``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from hpo.samplers import make_sampler
from hpo.samplers._gpyopt import _Codec, _import_gpyopt

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore")

DESIGN_SPACE: dict[str, BaseDistribution] = {
    "learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
    "dropout": FloatDistribution(0.0, 0.6),
    "dense_units": IntDistribution(32, 512, step=32),
    "l1": FloatDistribution(1e-7, 1e-2, log=True),
    "l2": FloatDistribution(1e-7, 1e-2, log=True),
    "batch_size": CategoricalDistribution([16, 32, 64, 128]),
    "unfrozen_layers": IntDistribution(0, 100, step=10),
}


class StockGPyOpt(optuna.samplers.BaseSampler):
    """GPyOpt's BayesianOptimization with default settings, refitted every call."""

    def __init__(self, seed: int, n_initial: int = 10) -> None:
        self._seed = seed
        self._n_initial = n_initial
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, BaseDistribution]:
        space = optuna.search_space.intersection_search_space(study.get_trials(deepcopy=False))
        return {k: v for k, v in space.items() if not v.single()}

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not search_space or len(done) < self._n_initial:
            return {}
        gpyopt = _import_gpyopt()
        codec = _Codec(search_space)
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        x = np.array([codec.encode(t.params) for t in done])
        y = np.array([[sign * t.value] for t in done])
        state = np.random.get_state()
        np.random.seed(self._seed + trial.number)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                bo = gpyopt.methods.BayesianOptimization(
                    f=None, domain=codec.domain, X=x, Y=y, acquisition_type="EI"
                )
                point = bo.suggest_next_locations()[0]
        finally:
            np.random.set_state(state)
        return codec.decode(point)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self._random.sample_independent(study, trial, name, dist)


def build(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "gpyopt-stock":
        return StockGPyOpt(seed)
    return make_sampler(name, seed=seed, timed=False)


# --- test functions -------------------------------------------------------


def branin(trial: optuna.Trial) -> float:
    x1 = trial.suggest_float("x1", -5.0, 10.0)
    x2 = trial.suggest_float("x2", 0.0, 15.0)
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(trial: optuna.Trial) -> float:
    x = np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)])
    return float(-np.sum(_ALPHA * np.exp(-np.sum(_A * (x - _P) ** 2, axis=1))))


def surface(params: dict[str, Any]) -> float:
    """A smooth 'validation F1' over the design-card space; maximum 1.0 at
    lr 1e-3.5, dropout 0.3, 256 units, l1 1e-6, l2 1e-4, batch 32, 40 layers."""
    lr = (math.log10(params["learning_rate"]) + 3.5) / 3
    drop = (params["dropout"] - 0.3) / 0.6
    units = (params["dense_units"] - 256) / 480
    l1 = (math.log10(params["l1"]) + 6) / 5
    l2 = (math.log10(params["l2"]) + 4) / 5
    layers = (params["unfrozen_layers"] - 40) / 100
    batch = {16: 0.05, 32: 0.0, 64: 0.04, 128: 0.12}[params["batch_size"]]
    loss = 2.0 * lr**2 + drop**2 + units**2 + 0.3 * l1**2 + 0.6 * l2**2 + 1.5 * layers**2
    return 1.0 - loss - batch - 0.3 * lr * layers


def mixed(trial: optuna.Trial) -> float:
    params = {name: trial._suggest(name, dist) for name, dist in DESIGN_SPACE.items()}
    return surface(params)


PROBLEMS: dict[str, tuple[Callable[[optuna.Trial], float], str, float]] = {
    "branin": (branin, "minimize", 0.397887),
    "hartmann6": (hartmann6, "minimize", -3.32237),
    "design-card-7d": (mixed, "maximize", 1.0),
}


def quality(sampler: str, problem: str, budget: int, seed: int) -> float:
    func, direction, _ = PROBLEMS[problem]
    study = optuna.create_study(direction=direction, sampler=build(sampler, seed))
    study.optimize(func, n_trials=budget)
    return float(study.best_value)


def suggest_time(sampler: str, n_completed: int, repeats: int) -> float:
    rng = np.random.default_rng(n_completed)
    study = optuna.create_study(direction="maximize", sampler=build(sampler, 0))
    fill = optuna.samplers.RandomSampler(seed=n_completed)
    helper = optuna.create_study(sampler=fill)
    for _ in range(n_completed):
        t = helper.ask(DESIGN_SPACE)
        value = surface(t.params) + float(rng.normal(0, 0.01))
        helper.tell(t, value)
        study.add_trial(
            optuna.trial.create_trial(params=t.params, distributions=DESIGN_SPACE, value=value)
        )
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = study.ask(DESIGN_SPACE)
        times.append(time.perf_counter() - start)
        study.tell(trial, surface(trial.params))
    return statistics.median(times)


def conditions() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(
        f"{p} {metadata.version(p)}" for p in ("optuna", "gpyopt", "gpy", "torch", "numpy")
    )
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; {versions}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few seeds and small budgets")
    parser.add_argument("--samplers", default="tpe,gp,gpyopt,gpyopt-stock,random")
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args()
    samplers = args.samplers.split(",")
    seeds = args.seeds or (2 if args.quick else 5)
    budgets = {"branin": 30, "hartmann6": 60, "design-card-7d": 60}
    sizes = (25, 100, 250)
    repeats = 5
    if args.quick:
        budgets = {"branin": 15, "hartmann6": 20, "design-card-7d": 20}
        sizes, repeats = (25,), 3

    print(f"# conditions: {conditions()}")
    print(f"# quality: median over {seeds} seeds (min..max) of the best value at the budget")
    print("# time: median seconds per suggestion, design-card space, history of random trials")
    print()
    head = ["sampler"] + [f"s/sugg @{n}" for n in sizes]
    head += [f"{p} @{b} (opt {PROBLEMS[p][2]:g})" for p, b in budgets.items()]
    rows = []
    for name in samplers:
        row = [name]
        for n in sizes:
            row.append(f"{suggest_time(name, n, repeats):.3f}")
            print(f"  {name}: suggestion time at {n} done", file=sys.stderr)
        for problem, budget in budgets.items():
            values = [quality(name, problem, budget, seed) for seed in range(seeds)]
            row.append(f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f})")
            print(f"  {name}: {problem} done", file=sys.stderr)
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    table = "\n".join(lines)
    print(table)
    name = "samplers-quick.txt" if args.quick else "samplers.txt"
    out = Path(__file__).parent / "results" / name
    out.write_text(f"# {conditions()}\n{table}\n")


if __name__ == "__main__":
    main()
