"""A trial worker: one process that asks the study for trials until done.

``hpo run`` is one worker in the foreground. The worker loads and decodes
the dataset once, then runs ``study.optimize`` (which keeps the heartbeat
going). A trial that fails is recorded with its reason and the worker goes
on; several failures in a row mean something is wrong with the setup, so
the worker stops and says why instead of burning the budget.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo import keys
from hpo._retry import retrying
from hpo.errors import FatalError, TrialFailedError

if TYPE_CHECKING:
    from hpo.config import StudyConfig
    from hpo.data import Dataset
    from hpo.objective import EpochListener

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


class _FailureGuard:
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
        elif trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.streak = 0
            self.reasons.clear()


def load_data_for(study: optuna.Study, config: StudyConfig) -> Dataset:
    """Decode the dataset (once per process) and check it against the study."""
    from hpo.studies import record_fingerprint

    dataset = prepare_dataset(config)
    record_fingerprint(study, dataset.fingerprint())
    return dataset


def prepare_dataset(config: StudyConfig) -> Dataset:
    """Decode the dataset and check it can feed the search space's batches.

    Called before the study is created, so bad data changes nothing stored.
    """
    from hpo.data import load_dataset

    dataset = load_dataset(config.dataset)
    smallest_batch = _smallest(config)
    if smallest_batch > len(dataset.train):
        from hpo.errors import DataError

        raise DataError(
            f"dataset: {len(dataset.train)} training images are fewer than the smallest "
            f"batch_size {smallest_batch}; add images or lower batch_size"
        )
    return dataset


def _smallest(config: StudyConfig) -> int:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from hpo.space import SearchSpace

    space = SearchSpace.from_config(config)
    dist = space.distributions.get("batch_size")
    if isinstance(dist, CategoricalDistribution):
        return min(int(str(c)) for c in dist.choices)
    if isinstance(dist, IntDistribution):
        return int(dist.low)
    return int(space.fixed["batch_size"])


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT reached the worker: fail the running trial, re-queue it, stop.

    A ``KeyboardInterrupt``, so whatever handles Ctrl-C handles SIGTERM alike.
    """

    @property
    def signal_name(self) -> str:
        return str(self.args[0]) if self.args else "SIGINT"


class _Signals:
    """SIGTERM and SIGINT: raised inside a trial, deferred between trials.

    Inside a trial the exception stops training and the trial is failed and
    re-queued. Between trials (asking, telling, holding the budget lock) a
    storage call must not be cut in half, so the first signal only asks the
    loop to stop before its next trial; a second one raises at once.
    """

    def __init__(self) -> None:
        self.in_trial = False
        self.received: str | None = None
        self.raised = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: object) -> None:
        if self.raised:
            return  # already stopping: let the re-queue finish
        first = self.received is None
        self.received = signal.Signals(signum).name
        if self.in_trial or not first:
            self.raised = True
            raise Interrupted(self.received)

    def check(self) -> None:
        """Raise a deferred signal now that it is safe."""
        if self.received is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.received)


class _Heartbeat:
    """Beats for one RUNNING trial, so others can tell a live worker from a dead one.

    ``study.optimize`` beats only inside itself; this loop creates trials under
    the budget lock, so it beats itself: into Optuna's heartbeat table where
    the storage has one, else (behind the gRPC proxy) by changing a trial
    system attr that ``_StaleTrials`` watches.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int) -> None:
        from hpo.storage import HEARTBEAT_INTERVAL, native_heartbeat

        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.native = native_heartbeat(storage)
        get = getattr(storage, "get_heartbeat_interval", None)
        interval = get() if self.native and callable(get) else HEARTBEAT_INTERVAL
        self.interval = float(interval or HEARTBEAT_INTERVAL)
        self.beats = 0
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        with contextlib.suppress(Exception):  # a database blip: the thread beats again
            self._beat()
        self.thread = threading.Thread(target=self._run, daemon=True, name="hpo-heartbeat")
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a database blip: beat again next time
                self._beat()

    def _beat(self) -> None:
        self.beats += 1
        if self.native:
            self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
        else:
            from hpo.storage import BEAT_ATTR

            self.storage.set_trial_system_attr(
                self.trial_id, BEAT_ATTR, f"{socket.gethostname()}:{os.getpid()}:{self.beats}"
            )

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)


class _StaleTrials:
    """Fails RUNNING trials whose worker stopped beating, and queues them once more.

    Optuna's ``fail_stale_trials`` does the same but leaves no reason on the
    trial; here the reason is stored first. With Optuna's heartbeat table the
    storage names the stale trials; behind the gRPC proxy a trial is stale
    when its beat attr has not changed for the grace period of this process's
    own clock, so hosts' clocks never need to agree.
    """

    def __init__(self) -> None:
        self.seen: dict[int, tuple[object, float]] = {}

    def __call__(self, study: optuna.Study) -> list[int]:
        from hpo.storage import GRACE_PERIOD, RequeueFailedTrial, native_heartbeat

        storage = study._storage
        if native_heartbeat(storage):
            stale = list(storage._get_stale_trial_ids(study._study_id))  # type: ignore[attr-defined]
        else:
            stale = self._watch(study, GRACE_PERIOD)
        requeue = RequeueFailedTrial(max_retry=1, cause="lost")
        failed = []
        for trial_id in stale:
            try:
                frozen = storage.get_trial(trial_id)
                again = "re-queued once" if requeue.will_requeue(frozen) else "not re-queued again"
                reason = f"worker lost: no heartbeat for {GRACE_PERIOD} s; {again}"
                storage.set_trial_user_attr(trial_id, keys.FAIL_REASON, reason)
                if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    continue
            except (optuna.exceptions.UpdateFinishedTrialError, KeyError, RuntimeError):
                continue  # another worker failed it first
            log.warning("trial %d: %s", frozen.number, reason)
            requeue(study, storage.get_trial(trial_id))
            failed.append(frozen.number)
        return failed

    def _watch(self, study: optuna.Study, grace: float) -> list[int]:
        from hpo.storage import BEAT_ATTR

        now = time.monotonic()
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        stale = []
        for t in running:
            beat = t.system_attrs.get(BEAT_ATTR)
            last = self.seen.get(t._trial_id)
            if last is None or last[0] != beat:
                self.seen[t._trial_id] = (beat, now)
            elif now - last[1] > grace:
                stale.append(t._trial_id)
        alive = {t._trial_id for t in running}
        for trial_id in [i for i in self.seen if i not in alive]:
            del self.seen[trial_id]
        return stale


class _Watchdog:
    """Ends the process if a trial hangs past its time limit plus a margin.

    Training checks the limit after every batch; this catches a trial stuck
    inside one operation, where no Python code runs. The trial is recorded as
    failed first, then the process exits with ``HUNG_EXIT_CODE`` so a launcher
    starts a fresh worker.
    """

    def __init__(self, study: optuna.Study, trial: optuna.Trial, limit: float | None) -> None:
        self.study, self.trial, self.limit = study, trial, limit
        self.timer: threading.Timer | None = None

    def __enter__(self) -> _Watchdog:
        if self.limit:
            self.timer = threading.Timer(self.limit + HANG_MARGIN, self._fire)
            self.timer.daemon = True
            self.timer.start()
        return self

    def _fire(self) -> None:
        reason = (
            f"hung past training.trial_timeout of {self.limit:g} s "
            f"(+{HANG_MARGIN:g} s margin); its worker process was ended"
        )
        with contextlib.suppress(Exception):
            self.study._storage.set_trial_user_attr(self.trial._trial_id, keys.FAIL_REASON, reason)
            self.study.tell(self.trial, state=TrialState.FAIL)
        log.error("trial %d %s", self.trial.number, reason)
        os._exit(HUNG_EXIT_CODE)

    def __exit__(self, *exc: object) -> None:
        if self.timer is not None:
            self.timer.cancel()


HANG_MARGIN = float(os.environ.get("HPO_HANG_MARGIN", "60"))
HUNG_EXIT_CODE = 75
RECYCLE_EXIT_CODE = 76  # quota of trials per process reached: restart me, not an error
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


_WAIT = "wait"


def _next_trial(
    study: optuna.Study, storage_url: str | None, budget: int | None, stale: _StaleTrials
) -> optuna.Trial | str | None:
    """The next trial; None when the budget is used up; ``_WAIT`` when only
    trials running elsewhere stand between the study and its budget (one of
    them may belong to a dead worker and come back to the queue)."""

    def create() -> optuna.Trial | str | None:
        stale(study)
        if budget is not None:
            done, running = _counts(study)
            if done >= budget:
                return None
            if done + running >= budget:
                return _WAIT
        return study.ask()

    if budget is None or storage_url is None:
        return retrying(create, "ask")
    if storage_url.startswith("grpc://"):
        return retrying(lambda: _claim_by_number(study, budget, stale), "ask")
    from hpo._budget import budget_lock

    def locked() -> optuna.Trial | str | None:
        with budget_lock(storage_url, study.study_name):
            return create()

    return retrying(locked, "ask")


def _counts(study: optuna.Study) -> tuple[int, int]:
    """Finished (complete or pruned) and running trials, from one read."""
    trials = study.get_trials(deepcopy=False, states=(*_FINISHED, TrialState.RUNNING))
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    return len(trials) - running, running


def _claim_by_number(
    study: optuna.Study, budget: int, stale: _StaleTrials
) -> optuna.Trial | str | None:
    """The budget without a lock (behind the gRPC proxy): trial numbers decide.

    The storage numbers trials atomically, so a new trial proceeds only if
    fewer than ``budget`` finished or running trials precede it; otherwise it
    is marked failed as surplus at once, before any training. Counting first
    keeps surplus trials to real races (workers asking at the same moment).
    """
    stale(study)
    done, running = _counts(study)
    if done >= budget:
        return None
    if done + running >= budget:
        return _WAIT
    trial = study.ask()
    ahead = [
        t
        for t in study.get_trials(deepcopy=False, states=(*_FINISHED, TrialState.RUNNING))
        if t.number < trial.number
    ]
    if len(ahead) < budget:
        return trial
    trial.set_user_attr(keys.FAIL_REASON, "surplus: the shared budget was already claimed")
    study.tell(trial, state=TrialState.FAIL)
    frozen = study._storage.get_trial(trial._trial_id)
    if "failed_trial" in frozen.system_attrs or "fixed_params" in frozen.system_attrs:
        # A queued trial lost the race: queue it again rather than drop its parameters.
        from hpo.storage import RequeueFailedTrial

        RequeueFailedTrial(max_retry=None, cause="surplus")(study, frozen)
    return _WAIT


def physical_device(device: str, visible: str | None = None) -> str:
    """``GPU:0`` as TensorFlow names it, renamed to the card's index on the host.

    A worker pinned with ``CUDA_VISIBLE_DEVICES=3`` sees its GPU as ``GPU:0``;
    reports and the live table should say ``GPU:3``.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if not device.startswith("GPU:") or not visible:
        return device
    cards = [c.strip() for c in visible.split(",") if c.strip()]
    index = int(device.removeprefix("GPU:"))
    return f"GPU:{cards[index]}" if index < len(cards) else device


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=_FINISHED))


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
        from hpo.training import configure_tensorflow, device_name

        configure_tensorflow()  # first, so TensorFlow's start-up notices stay quiet
        from hpo.objective import Objective

        dataset = load_data_for(study, config)
        objective = Objective(
            config, dataset, worker=worker, device=physical_device(device_name()), on_epoch=on_epoch
        )
    guard = _FailureGuard(max_consecutive_failures)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The heartbeat is run by this loop, not study.optimize; Optuna warns about both.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
    summary = RunSummary(study.study_name)
    deadline = time.monotonic() + timeout if timeout else None
    limit = config.training.trial_timeout
    stale = _StaleTrials()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    with _Signals() as signals:
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
            trial = _next_trial(study, storage_url, budget, stale)
            summary.storage_seconds += time.perf_counter() - t0
            if trial is None:
                break
            if isinstance(trial, str):
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
                with _Heartbeat(study._storage, trial._trial_id), _Watchdog(study, trial, limit):
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
    return summary


def _tell(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None
) -> optuna.trial.FrozenTrial:
    try:
        return study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError:
        # Already finished elsewhere (e.g. failed as stale by another worker).
        return study._storage.get_trial(trial._trial_id)


def _requeue(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Fail the running trial now and queue its parameters again."""
    from hpo.storage import RequeueFailedTrial

    with contextlib.suppress(Exception):
        trial.set_user_attr(keys.FAIL_REASON, reason)
    try:
        study.tell(trial, state=TrialState.FAIL)
    except RuntimeError:
        return  # finished elsewhere meanwhile (failed as stale): already handled
    frozen = study._storage.get_trial(trial._trial_id)
    RequeueFailedTrial(max_retry=None, cause="interrupted")(study, frozen)
