"""The trial objective of a benchmark study: evaluate the problem, taking ``seconds``.

It records what the image objective records about where a trial ran (host,
pid, device, worker) so status, reports and the launcher's table read a
benchmark study like any other, and it reports the value at a few steps so
pruners, heartbeats, signals and the hang watchdog meet a running trial.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import optuna

from hpo import keys
from hpo.errors import TrialFailedError
from hpo.events import EpochEvent
from hpo.storage import retrying

if TYPE_CHECKING:
    from hpo.benchmarks._base import Problem
    from hpo.events import EpochListener

STEP_SECONDS = 0.5  # one reported step per half second of a trial's duration
MAX_STEPS = 10


def steps_for(seconds: float) -> int:
    """Steps a trial of ``seconds`` reports: 1 when instant, else 2 to ``MAX_STEPS``."""
    if seconds <= 0:
        return 1
    return max(2, min(MAX_STEPS, math.ceil(seconds / STEP_SECONDS)))


def _set(trial: optuna.Trial, key: str, value: Any) -> None:
    retrying(lambda: trial.set_user_attr(key, value), f"storing {key}")


class BenchmarkObjective:
    """Callable for the worker loop: one trial of ``problem``, lasting ``seconds``."""

    def __init__(
        self,
        problem: Problem,
        *,
        seconds: float = 0.0,
        trial_timeout: float | None = None,
        worker: str | None = None,
        device: str = "cpu",
        on_epoch: EpochListener | None = None,
    ) -> None:
        from hpo.space import SearchSpace

        self.problem = problem
        self.space = SearchSpace(problem.distributions)
        self.seconds = seconds
        self.trial_timeout = trial_timeout
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.device = device
        self.on_epoch = on_epoch
        self.steps = steps_for(seconds)

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.space.suggest(trial)  # the sampler's time, kept out of ``seconds``
        _set(trial, keys.PARAMS_FULL, params)
        _set(trial, keys.HOST, socket.gethostname())
        _set(trial, keys.PID, os.getpid())
        _set(trial, keys.DEVICE, self.device)
        _set(trial, keys.WORKER, self.worker)
        start = time.monotonic()
        value = self.problem.evaluate(params)
        for step in range(self.steps):
            # Sleep to a point on the schedule, so storage calls do not add up.
            pause = start + self.seconds * (step + 1) / self.steps - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elapsed = time.monotonic() - start
            if self.trial_timeout is not None and elapsed > self.trial_timeout:
                reason = (
                    f"trial exceeded training.trial_timeout of {self.trial_timeout:g} s "
                    f"after {step + 1} step(s)"
                )
                _set(trial, keys.FAIL_REASON, reason)
                raise TrialFailedError(reason)
            # A flat curve: the problem has no learning curve, but pruners compare
            # trials at equal steps, so the value itself is what they see.
            retrying(functools.partial(trial.report, value, step), "report")
            if self.on_epoch is not None:
                self.on_epoch(EpochEvent(trial.number, step, self.steps, value))
            if retrying(trial.should_prune, "should_prune"):
                _set(trial, keys.EPOCHS, step + 1)
                raise optuna.TrialPruned(f"pruned at step {step}")
        _set(trial, keys.EPOCHS, self.steps)
        _set(trial, keys.TRAIN_SECONDS, round(time.monotonic() - start, 4))
        _set(trial, keys.METRICS, {self.problem.name: value, "regret": self.problem.regret(value)})
        return value
