"""Samplers: TPE, Optuna's GP, our GPyOpt sampler and random, by name.

``make_sampler(name, seed=None, **options)`` is what study files and
``hpo run --sampler`` use; ``GPyOptSampler`` is importable for direct use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.samplers._factory import SAMPLER_NAMES, make_sampler, sampler_options
from hpo.samplers._timed import TimedSampler

if TYPE_CHECKING:
    from hpo.samplers._gpyopt import GPyOptSampler


def __getattr__(name: str) -> Any:
    # GPyOpt imports matplotlib and GPy: load it only when asked for.
    if name == "GPyOptSampler":
        from hpo.samplers._gpyopt import GPyOptSampler

        return GPyOptSampler
    raise AttributeError(name)


__all__ = ["SAMPLER_NAMES", "GPyOptSampler", "TimedSampler", "make_sampler", "sampler_options"]
