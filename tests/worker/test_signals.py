"""SIGTERM and SIGINT: deferred between trials, raised inside one, the trial re-queued."""

from __future__ import annotations

import signal
import threading

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from hpo.config import StudyConfig
from hpo.worker import Interrupted, run_worker
from hpo.worker._signals import DeferredSignals


def test_a_signal_between_trials_waits_for_a_safe_point() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with DeferredSignals() as signals:
        signal.raise_signal(signal.SIGTERM)  # no exception: a storage call may be running
        assert signals.received == "SIGTERM"
        with pytest.raises(Interrupted) as info:
            signals.check()
        assert info.value.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_signal_inside_a_trial_raises_at_once() -> None:
    with DeferredSignals() as signals:
        signals.in_trial = True
        with pytest.raises(Interrupted):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # already stopping: the re-queue must finish


def test_a_second_signal_raises_at_once() -> None:
    with DeferredSignals():
        signal.raise_signal(signal.SIGTERM)
        with pytest.raises(Interrupted) as info:
            signal.raise_signal(signal.SIGINT)
        assert info.value.signal_name == "SIGINT"


def test_handlers_only_on_the_main_thread() -> None:
    installed: list[dict[int, object]] = []

    def elsewhere() -> None:
        with DeferredSignals() as signals:
            installed.append(dict(signals.previous))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert installed == [{}]


def test_sigterm_during_a_trial_fails_and_requeues_it(
    config: StudyConfig, study: optuna.Study
) -> None:
    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        signal.raise_signal(signal.SIGTERM)
        return 0.0

    with pytest.raises(Interrupted):
        run_worker(config, study, n_trials=1, objective=objective)
    failed, queued = study.trials
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[keys.FAIL_REASON] == "interrupted (SIGTERM); re-queued"
    assert queued.state == TrialState.WAITING
    assert queued.params == failed.params


def test_a_signal_after_the_last_trial_is_not_lost(
    config: StudyConfig, study: optuna.Study
) -> None:
    """SIGTERM while the last trial is being told: the caller must still see it.

    ``hpo compare`` runs one study after another in one process; a signal that
    ended a study's loop quietly would let the next study start.
    """

    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)

    def after_tell(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        signal.raise_signal(signal.SIGTERM)  # between trials: deferred

    with pytest.raises(Interrupted) as info:
        run_worker(config, study, n_trials=1, objective=objective, callbacks=[after_tell])
    assert info.value.signal_name == "SIGTERM"
    (done,) = study.trials
    assert done.state == TrialState.COMPLETE, "the finished trial keeps its result"
