"""The hyperparameters the trainer understands: defaults, ranges, optimizers.

Declared once, here, so the study file's schema (``hpo.config``), the search
space (``hpo.space``) and the trainer (``hpo.training``) agree. Keras-free:
optimizers are named by their Keras class, resolved only where training runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpo.errors import ConfigError

# The value used when the search space leaves a hyperparameter out.
DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "dropout": 0.2,
    "dense_units": 128,
    "l1": 0.0,
    "l2": 0.0,
    "batch_size": 32,
    "unfrozen_layers": 0,
    "finetune_lr_factor": 0.1,
    "optimizer": "adam",
}
NAMES = tuple(DEFAULTS)


@dataclass(frozen=True)
class Bound:
    """The values the trainer accepts for one numeric hyperparameter."""

    low: float
    high: float
    allowed: str  # what the error message says is allowed
    integer: bool = False
    positive: bool = False  # low itself is excluded


BOUNDS: dict[str, Bound] = {
    "learning_rate": Bound(0.0, 10.0, "a positive number up to 10", positive=True),
    "dropout": Bound(0.0, 0.99, "between 0 and 0.99"),
    "dense_units": Bound(1, 65536, "an integer from 1 to 65536", integer=True),
    "l1": Bound(0.0, 10.0, "between 0 and 10"),
    "l2": Bound(0.0, 10.0, "between 0 and 10"),
    "batch_size": Bound(1, 65536, "an integer from 1 to 65536", integer=True),
    "unfrozen_layers": Bound(0, 100000, "an integer of 0 or more", integer=True),
    "finetune_lr_factor": Bound(0.0, 10.0, "a positive number up to 10", positive=True),
}


@dataclass(frozen=True)
class Optimizer:
    """A ``keras.optimizers`` class by name, and the options we give it."""

    keras_class: str
    options: Mapping[str, float] = field(default_factory=dict)


OPTIMIZERS: dict[str, Optimizer] = {
    "adam": Optimizer("Adam"),
    "sgd": Optimizer("SGD", {"momentum": 0.9}),
    "rmsprop": Optimizer("RMSprop"),
    "adamw": Optimizer("AdamW"),
}


def optimizer(name: str) -> Optimizer:
    """The optimizer called ``name``; an unknown name is an error, never Adam."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"search_space.optimizer: {name!r} is not allowed; allowed: {', '.join(OPTIMIZERS)}"
        ) from None


def is_integer(name: str) -> bool:
    bound = BOUNDS.get(name)
    return bound is not None and bound.integer


def check_value(name: str, value: Any) -> None:
    """Raise ``ConfigError`` unless the trainer accepts ``value`` for ``name``."""
    if name == "optimizer":
        if not isinstance(value, str) or value not in OPTIMIZERS:
            raise ConfigError(
                f"search_space.{name}: {value!r} is not allowed; allowed: {', '.join(OPTIMIZERS)}"
            )
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"search_space.{name}: {value!r} is not a number")
    bound = BOUNDS[name]
    if bound.integer and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"search_space.{name}: {value!r} must be {bound.allowed}")
    if not bound.low <= value <= bound.high or (bound.positive and value <= 0):  # NaN fails too
        raise ConfigError(
            f"search_space.{name}: {value!r} is out of range; must be {bound.allowed}"
        )


def check_searched(name: str, kind: str, values: tuple[Any, ...]) -> None:
    """Check a searched entry: every choice, or both ends of a range.

    ``kind`` is the study file's ``type`` (float, int or categorical).
    """
    for value in values:
        check_value(name, value)
    if kind == "float" and is_integer(name):
        raise ConfigError(f"search_space.{name}: must be of type int")
