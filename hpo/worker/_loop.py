"""A trial worker: one process that asks the study for trials until done.

``hpo run`` is one worker in the foreground. The worker loads and decodes
the dataset once, then asks for trials (``_admission``), trains each while
beating for it (``_liveness``) and tells the result back. A trial that fails
is recorded with its reason and the worker goes on; several failures in a
row mean something is wrong with the setup, so the worker stops and says why
instead of burning the budget.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo import keys
from hpo.errors import FatalError, TrialFailedError
from hpo.results import FINISHED, finished_count
from hpo.storage import RequeueFailedTrial, retrying
from hpo.storage import optuna_private as private
from hpo.worker._admission import Verdict, next_trial
from hpo.worker._liveness import HangWatchdog, Heartbeat, StaleTrials
from hpo.worker._signals import DeferredSignals, Interrupted

if TYPE_CHECKING:
    from hpo.config import StudyConfig
    from hpo.events import EpochListener

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 3
TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass
class RunSummary:
    study_name: str
    trials_run: int = 0
    states: dict[str, int] = field(default_factory=dict)
    stopped_reason: str | None = None
    recycle: bool = False  # stopped after its per-process quota; start a fresh process
    storage_seconds: float = 0.0  # in asking (budget lock included) and telling, not waiting


class FailureGuard:
    """Stops the study after ``limit`` failed trials in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0
        self.reasons: list[str] = []
        self.tripped = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            self.streak += 1
            self.reasons.append(str(trial.user_attrs.get(keys.FAIL_REASON, "unknown error")))
            if self.streak >= self.limit:
                self.tripped = True
        elif trial.state in FINISHED:
            self.streak = 0
            self.reasons.clear()


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna at WARNING, without the warnings this loop makes it raise; restored after.

    The heartbeat is run by this loop, not ``study.optimize``; Optuna warns
    about both. The caller (a CLI, a test, a notebook) gets its own log level
    and warning filters back when ``run_worker`` returns or raises.
    """
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def run_worker(
    config: StudyConfig,
    study: optuna.Study,
    *,
    n_trials: int | None,
    timeout: float | None = None,
    worker: str | None = None,
    on_epoch: EpochListener | None = None,
    callbacks: Sequence[TrialCallback] = (),
    max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
    budget: int | None = None,
    storage_url: str | None = None,
    objective: Callable[[optuna.Trial], float] | None = None,
    max_trials_per_process: int | None = None,
) -> RunSummary:
    """Run trials of ``study`` in this process.

    ``n_trials`` counts this worker's own trials (``hpo run``); ``budget`` is
    the study's total of finished trials shared by every worker (``hpo
    worker``), enforced under a lock in the database so it is exact. An
    ``objective`` replaces training (the scaling benchmark times the loop
    itself with one of fixed duration).
    """
    if objective is None:
        objective = _objective_for(config, study, worker=worker, on_epoch=on_epoch)
    with quiet_optuna():
        return _loop(
            config,
            study,
            objective,
            n_trials=n_trials,
            timeout=timeout,
            guard=FailureGuard(max_consecutive_failures),
            callbacks=callbacks,
            budget=budget,
            storage_url=storage_url,
            max_trials_per_process=max_trials_per_process,
        )


def _objective_for(
    config: StudyConfig, study: optuna.Study, *, worker: str | None, on_epoch: EpochListener | None
) -> Callable[[optuna.Trial], float]:
    """The study's own objective: its benchmark problem, or image training on its data.

    A benchmark study never imports a Keras backend nor decodes any data.
    """
    if config.objective.benchmark is not None:
        from hpo.benchmarks import BenchmarkObjective, get_problem

        return BenchmarkObjective(
            get_problem(config.objective.benchmark),
            seconds=config.objective.seconds,
            trial_timeout=config.training.trial_timeout,
            worker=worker,
            on_epoch=on_epoch,
        )
    from hpo.gpus import physical_device
    from hpo.training import check_gpu, configure_backend, device_name

    # First, before anything imports Keras: the study file's backend, quiet start-up.
    configure_backend(config.training.backend)
    # A worker given a GPU its backend cannot see stops here, before any trial exists.
    check_gpu(config.training.backend)
    from hpo.objective import Objective
    from hpo.worker._data import prepare_dataset_and_fingerprint

    dataset = prepare_dataset_and_fingerprint(study, config)
    return Objective(
        config, dataset, worker=worker, device=physical_device(device_name()), on_epoch=on_epoch
    )


def _loop(
    config: StudyConfig,
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int | None,
    timeout: float | None,
    guard: FailureGuard,
    callbacks: Sequence[TrialCallback],
    budget: int | None,
    storage_url: str | None,
    max_trials_per_process: int | None,
) -> RunSummary:
    """Ask, train, tell until a limit is reached (the body of ``run_worker``)."""
    summary = RunSummary(study.study_name)
    deadline = time.monotonic() + timeout if timeout else None
    limit = config.training.trial_timeout
    stale = StaleTrials()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    with DeferredSignals() as signals:
        while n_trials is None or summary.trials_run < n_trials:
            signals.check()
            if max_trials_per_process and summary.trials_run >= max_trials_per_process:
                # TensorFlow keeps some memory per trained model even after the session
                # is cleared; a fresh process after a quota keeps long runs bounded.
                summary.recycle = budget is None or retrying(
                    lambda: finished_count(study) < budget, "count"
                )
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            admission = next_trial(study, storage_url, budget, stale)
            summary.storage_seconds += time.perf_counter() - t0
            if admission.verdict is Verdict.DONE:
                break
            trial = admission.trial
            if trial is None:  # Verdict.WAIT
                time.sleep(1.0)
                continue
            state, value = TrialState.FAIL, None
            try:
                signals.in_trial = True
                signals.check()  # a signal while the trial was being created
                if visible is not None:
                    retrying(
                        functools.partial(trial.set_user_attr, keys.VISIBLE_DEVICES, visible),
                        "attr",
                    )
                with Heartbeat(study, trial), HangWatchdog(study, trial, limit):
                    value = objective(trial)
                signals.in_trial = False
                state = TrialState.COMPLETE
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except TrialFailedError as exc:
                log.warning("trial %d failed: %s", trial.number, exc)
            except KeyboardInterrupt as exc:  # Interrupted (SIGTERM) or Ctrl-C
                name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
                reason = f"interrupted ({name}); re-queued"
                retrying(functools.partial(_requeue, study, trial, reason), "re-queue")
                summary.stopped_reason = f"trial {trial.number} {reason}"
                if isinstance(exc, Interrupted):
                    exc.trial = trial.number  # named in the line the command prints
                raise
            except BaseException as exc:
                # A user error (HpoError) or a bug: record the trial as failed, then stop.
                with contextlib.suppress(Exception):
                    trial.set_user_attr(keys.FAIL_REASON, f"{exc.__class__.__name__}: {exc}"[:300])
                    study.tell(trial, state=TrialState.FAIL)
                raise
            finally:
                signals.in_trial = False
            t0 = time.perf_counter()
            frozen = retrying(functools.partial(_tell, study, trial, state, value), "tell")
            summary.storage_seconds += time.perf_counter() - t0
            summary.trials_run += 1
            summary.states[state.name] = summary.states.get(state.name, 0) + 1
            everyone: list[TrialCallback] = [guard, *callbacks]
            for cb in everyone:
                cb(study, frozen)
            if guard.tripped:
                last = guard.reasons[-1] if guard.reasons else "unknown"
                raise FatalError(
                    f"stopped after {guard.streak} failed trials in a row; last reason: {last}"
                )
        # A signal deferred while the last trial was told must still stop the caller
        # (``hpo compare`` would otherwise start its next study).
        signals.check()
    return summary


def _tell(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None
) -> optuna.trial.FrozenTrial:
    try:
        return study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError:
        # Already finished elsewhere (e.g. failed as stale by another worker).
        return private.reload_trial(study, trial)


def _requeue(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Fail the running trial now and queue its parameters again."""
    with contextlib.suppress(Exception):
        trial.set_user_attr(keys.FAIL_REASON, reason)
    try:
        study.tell(trial, state=TrialState.FAIL)
    except RuntimeError:
        return  # finished elsewhere meanwhile (failed as stale): already handled
    frozen = private.reload_trial(study, trial)
    RequeueFailedTrial(max_retry=None, cause="interrupted")(study, frozen)
