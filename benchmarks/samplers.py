"""Sampler benchmark: time per suggestion and optimization quality.

    python benchmarks/samplers.py            # full run (about 40 min on 2 busy cores)
    python benchmarks/samplers.py --quick    # smoke run
    python benchmarks/samplers.py --space wide --samplers gpyopt --no-quality

Prints, for each sampler, the median time per suggestion (wall clock, and
the process's CPU seconds, which a busy machine inflates less) at 25, 100
and 250 completed trials in two 7-parameter spaces of the design card's
kinds: ``stepped`` (dense units step 32, unfrozen layers step 10) and
``wide`` (dense units 32..1024 on a log scale, unfrozen layers 0..100 in
steps of one), both with log-scaled rates and a categorical batch size.
Then the best value reached (median over seeds, with min-max) at fixed
budgets on Branin (minimum 0.397887), Hartmann-6 (minimum -3.32237) and a
mixed-type surface over each space (maximum 1.0). ``gpyopt-stock`` is
GPyOpt's own BayesianOptimization with its defaults (five GP restarts,
L-BFGS acquisition search) behind the same interface, for comparison with
our ``gpyopt``. The load average is printed with the results: on a shared
machine wall-clock times are only comparable within one run.
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
from typing import Any, Literal

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
from hpo.samplers._gpyopt import _import_gpyopt

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore")

STEPPED: dict[str, BaseDistribution] = {
    "learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
    "dropout": FloatDistribution(0.0, 0.6),
    "dense_units": IntDistribution(32, 512, step=32),
    "l1": FloatDistribution(1e-7, 1e-2, log=True),
    "l2": FloatDistribution(1e-7, 1e-2, log=True),
    "batch_size": CategoricalDistribution([16, 32, 64, 128]),
    "unfrozen_layers": IntDistribution(0, 100, step=10),
}
WIDE: dict[str, BaseDistribution] = {
    **STEPPED,
    "dense_units": IntDistribution(32, 1024, log=True),
    "unfrozen_layers": IntDistribution(0, 100),
}
SPACES = {"stepped": STEPPED, "wide": WIDE}


class StockDomain:
    """GPyOpt's own encoding: log floats in log space, small grids as GPyOpt
    discrete variables, categoricals as its categorical ones."""

    MAX_GRID = 64  # larger grids are handed to GPyOpt as continuous ranges

    def __init__(self, space: dict[str, BaseDistribution]) -> None:
        self.names = sorted(space)
        self.space = space
        self.domain: list[dict[str, Any]] = []
        for name in self.names:
            dist = space[name]
            if isinstance(dist, CategoricalDistribution):
                choices = tuple(range(len(dist.choices)))
                self.domain.append({"name": name, "type": "categorical", "domain": choices})
                continue
            assert isinstance(dist, (FloatDistribution, IntDistribution))
            grid = self._grid(dist)
            if grid is not None:
                self.domain.append({"name": name, "type": "discrete", "domain": tuple(grid)})
            else:
                lo, hi = (
                    (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
                )
                self.domain.append({"name": name, "type": "continuous", "domain": (lo, hi)})

    def _grid(self, dist: FloatDistribution | IntDistribution) -> list[float] | None:
        if dist.log:
            if isinstance(dist, IntDistribution) and dist.high - dist.low + 1 <= self.MAX_GRID:
                return [math.log(v) for v in range(dist.low, dist.high + 1)]
            return None
        if dist.step is None:
            return None
        n = math.floor((dist.high - dist.low) / dist.step + 1e-9) + 1
        return [float(dist.low + i * dist.step) for i in range(n)] if n <= self.MAX_GRID else None

    def encode(self, params: dict[str, Any]) -> list[float]:
        row = []
        for name in self.names:
            dist, value = self.space[name], params[name]
            if isinstance(dist, CategoricalDistribution):
                row.append(float(dist.to_internal_repr(value)))
            else:
                row.append(math.log(value) if getattr(dist, "log", False) else float(value))
        return row

    def decode(self, x: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, v in zip(self.names, x, strict=True):
            dist = self.space[name]
            if isinstance(dist, CategoricalDistribution):
                out[name] = dist.choices[int(np.clip(round(v), 0, len(dist.choices) - 1))]
                continue
            assert isinstance(dist, (FloatDistribution, IntDistribution))
            value = min(max(math.exp(v) if dist.log else float(v), dist.low), dist.high)
            if dist.step is not None:
                k = round((value - dist.low) / dist.step)
                value = min(dist.low + k * dist.step, dist.high)
            out[name] = int(value) if isinstance(dist, IntDistribution) else float(value)
        return out


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
        codec = StockDomain(search_space)
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
    return float(1.0 - loss - batch - 0.3 * lr * layers)


def mixed(space: dict[str, BaseDistribution]) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        return surface({name: trial._suggest(name, dist) for name, dist in space.items()})

    return objective


PROBLEMS: dict[
    str, tuple[Callable[[optuna.Trial], float], Literal["minimize", "maximize"], float]
] = {
    "branin": (branin, "minimize", 0.397887),
    "hartmann6": (hartmann6, "minimize", -3.32237),
    "design-card-7d": (mixed(STEPPED), "maximize", 1.0),
    "design-card-wide-7d": (mixed(WIDE), "maximize", 1.0),
}


def quality(sampler: str, problem: str, budget: int, seed: int) -> float:
    func, direction, _ = PROBLEMS[problem]
    study = optuna.create_study(direction=direction, sampler=build(sampler, seed))
    study.optimize(func, n_trials=budget)
    return float(study.best_value)


def suggest_time(
    sampler: str, space: dict[str, BaseDistribution], n_completed: int, repeats: int
) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``study.ask`` after ``n_completed`` random trials.

    The sampler is made (and GPyOpt imported) before the clock starts, as in
    a study, where the import happens when the sampler is made.
    """
    rng = np.random.default_rng(n_completed)
    study = optuna.create_study(direction="maximize", sampler=build(sampler, 0))
    fill = optuna.samplers.RandomSampler(seed=n_completed)
    helper = optuna.create_study(sampler=fill)
    for _ in range(n_completed):
        t = helper.ask(space)
        value = surface(t.params) + float(rng.normal(0, 0.01))
        helper.tell(t, value)
        study.add_trial(
            optuna.trial.create_trial(params=t.params, distributions=space, value=value)
        )
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        trial = study.ask(space)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        study.tell(trial, surface(trial.params))
    return statistics.median(walls), statistics.median(cpus)


def table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


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


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few seeds and small budgets")
    parser.add_argument("--samplers", default="tpe,gp,gpyopt,gpyopt-stock,random")
    parser.add_argument("--space", default="stepped,wide", help="spaces to time: stepped,wide")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5, help="suggestions timed per size")
    parser.add_argument("--no-quality", action="store_true", help="time suggestions only")
    parser.add_argument("--out", type=Path, default=None, help="results file")
    args = parser.parse_args()
    samplers = args.samplers.split(",")
    spaces = args.space.split(",")
    for name in spaces:
        if name not in SPACES:
            parser.error(f"--space: unknown space {name!r}; allowed: {', '.join(SPACES)}")
    seeds = args.seeds or (2 if args.quick else 5)
    budgets = {"branin": 30, "hartmann6": 60, "design-card-7d": 60, "design-card-wide-7d": 60}
    sizes: tuple[int, ...] = (25, 100, 250)
    repeats = args.repeats
    if args.quick:
        budgets = {p: b // 3 for p, b in budgets.items()}
        sizes, repeats = (25, 100), 3

    loads = [load()]
    print(f"# conditions: {conditions()}; load average {loads[0]}")
    timing_rows = []
    for name in samplers:
        for space in spaces:
            row = [name, space]
            for n in sizes:
                wall, cpu = suggest_time(name, SPACES[space], n, repeats)
                row.append(f"{wall:.3f} ({cpu:.3f})")
                print(f"  {name}: {space} space, {n} done: {wall:.3f} s", file=sys.stderr)
            timing_rows.append(row)
    loads.append(load())
    timing = table(["sampler", "space"] + [f"s/sugg @{n} wall (cpu)" for n in sizes], timing_rows)
    print(timing)
    parts = [
        f"# {conditions()}",
        f"# time: median of {repeats} suggestions after n random completed trials, wall "
        "seconds (process CPU seconds); load average (1, 5, 15 min) before "
        f"{loads[0]}, after {loads[1]}",
        timing,
    ]
    if not args.no_quality:
        head = ["sampler"] + [f"{p} @{b} (opt {PROBLEMS[p][2]:g})" for p, b in budgets.items()]
        rows = []
        for name in samplers:
            row = [name]
            for problem, budget in budgets.items():
                values = [quality(name, problem, budget, seed) for seed in range(seeds)]
                row.append(
                    f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f})"
                )
                print(f"  {name}: {problem} done", file=sys.stderr)
            rows.append(row)
        quality_table = table(head, rows)
        print(quality_table)
        parts += [
            "",
            f"# quality: median over {seeds} seeds (min..max) of the best value at the budget",
            quality_table,
        ]
    name = "samplers-quick.txt" if args.quick else "samplers.txt"
    out = args.out or Path(__file__).parent / "results" / name
    out.write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
