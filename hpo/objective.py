"""The objective: one Optuna trial -> one trained model -> validation score.

Everything a report needs later is written on the trial here (metrics,
per-class F1, confusion matrix, ROC curves, timing, host and device), because
reports read the database and nothing else.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import optuna

from hpo import keys
from hpo.errors import HpoError, TrialFailedError
from hpo.events import EpochEvent, EpochListener
from hpo.space import SearchSpace
from hpo.storage import retrying

if TYPE_CHECKING:
    from hpo.config import StudyConfig
    from hpo.data import Dataset

__all__ = ["EpochEvent", "EpochListener", "Objective"]  # the events stay importable from here


def _set(trial: optuna.Trial, key: str, value: Any) -> None:
    retrying(lambda: trial.set_user_attr(key, value), f"storing {key}")


def _oom(exc: BaseException) -> bool:
    name = exc.__class__.__name__
    return name == "ResourceExhaustedError" or "out of memory" in str(exc).lower()


def recipe(config: StudyConfig, dataset: Dataset, params: dict[str, Any]) -> dict[str, Any]:
    """Everything that decides what a trial trains, stored on the trial itself:
    ``hpo export`` rebuilds the model from it, whatever later runs of the study
    changed (sampler, timeouts, settings resume allows)."""
    cfg = config.to_dict()
    return {
        "input_shape": list(dataset.input_shape),
        **{name: cfg[name] for name in ("dataset", "model", "training", "objective")},
        "params": params,
        "sampler": {"name": config.sampler.name, "seed": config.sampler.seed},
    }


class Objective:
    """Callable for ``study.optimize``; holds the decoded dataset across trials."""

    def __init__(
        self,
        config: StudyConfig,
        dataset: Dataset,
        *,
        worker: str | None = None,
        device: str = "cpu",
        on_epoch: EpochListener | None = None,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.space = SearchSpace.from_config(config)
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.device = device
        self.on_epoch = on_epoch
        self.total_epochs = config.training.head_epochs + config.training.finetune_epochs
        # Counting parameters needs the whole model, which the feature cache skips building.
        self.count_params = config.objective.constraints.max_params is not None

    def __call__(self, trial: optuna.Trial) -> float:
        from hpo.training import KERAS_PARTS, clear_session, train_and_evaluate

        t_start = time.perf_counter()
        params = self.space.suggest(trial)
        _set(trial, keys.PARAMS_FULL, params)
        _set(trial, keys.RECIPE, recipe(self.config, self.dataset, params))
        _set(trial, keys.HOST, socket.gethostname())
        _set(trial, keys.PID, os.getpid())
        _set(trial, keys.DEVICE, self.device)
        _set(trial, keys.WORKER, self.worker)

        def report(step: int, value: float) -> bool:
            # value is objective.metric, the same metric this trial returns below,
            # so pruners compare the curve of what the study optimises.
            retrying(lambda: trial.report(value, step), "report")
            if self.on_epoch is not None:
                self.on_epoch(EpochEvent(trial.number, step, self.total_epochs, value))
            return bool(retrying(trial.should_prune, "should_prune"))

        try:
            result = train_and_evaluate(
                self.config, self.dataset, params, reporter=report, keep_model=self.count_params
            )
            n_params = int(result.model.count_params()) if result.model is not None else None
            result.model = None
        except HpoError:
            raise  # the study itself is wrong (data, batch size): stop, don't retry
        except TrialFailedError as exc:
            _set(trial, keys.FAIL_REASON, str(exc))
            raise
        except Exception as exc:
            first = str(exc).splitlines()[0][:300] if str(exc) else ""
            kind = "out of memory" if _oom(exc) else exc.__class__.__name__
            reason = f"{kind}: {first}"
            _set(trial, keys.FAIL_REASON, reason)
            raise TrialFailedError(reason) from exc
        finally:
            clear_session()

        ev = result.evaluation
        _set(trial, keys.BACKEND, result.backend)
        _set(trial, keys.EPOCHS, result.epochs)
        _set(trial, keys.TRAIN_SECONDS, round(result.train_seconds, 4))
        _set(trial, keys.IMAGES_PER_SECOND, round(result.images_per_second, 2))
        _set(trial, keys.METRICS, ev.scalars())
        _set(trial, keys.F1_PER_CLASS, ev.f1_per_class)
        _set(trial, keys.CONFUSION, ev.confusion_matrix)
        _set(trial, keys.ROC_CURVES, ev.roc_curves)
        _set(trial, keys.TIMING, result.timing)
        _set(trial, keys.FEATURE_CACHE, result.cache)
        keras_seconds = sum(result.timing.get(part, 0.0) for part in KERAS_PARTS)
        overhead = time.perf_counter() - t_start - keras_seconds
        _set(trial, keys.OVERHEAD_SECONDS, round(max(overhead, 0.0), 4))
        if result.pruned:
            raise optuna.TrialPruned(f"pruned at epoch {result.epochs}")
        self._constrain(trial, ev.confusion_matrix, n_params)
        value: Any = ev.scalars()[self.config.objective.metric]
        return float(value)

    def _constrain(
        self, trial: optuna.Trial, confusion: list[list[int]], n_params: int | None
    ) -> None:
        """Store the clinic's constraints where TPE, GP and ``hpo.results`` read them."""
        from hpo.metrics import constraint_values

        wanted = self.config.objective.constraints
        if n_params is not None:
            _set(trial, keys.N_PARAMS, n_params)
        values = constraint_values(
            self.dataset.class_names,
            confusion,
            min_recall=wanted.min_recall,
            max_params=wanted.max_params,
            n_params=n_params,
        )
        for name, value in values.items():
            retrying(functools.partial(trial.set_constraint, name, value), "set_constraint")
