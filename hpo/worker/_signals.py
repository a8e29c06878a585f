"""SIGTERM and SIGINT in a worker: stop cleanly, never in the middle of a storage call."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT reached the worker: fail the running trial, re-queue it, stop.

    A ``KeyboardInterrupt``, so whatever handles Ctrl-C handles SIGTERM alike.
    ``trial`` is the number of the trial that was running, set by the worker
    loop once it has failed and re-queued it (None between trials).
    """

    trial: int | None = None

    @property
    def signal_name(self) -> str:
        return str(self.args[0]) if self.args else "SIGINT"

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended."""
        return 128 + int(signal.Signals[self.signal_name])


def requeued_as(study: optuna.Study, number: int) -> int | None:
    """The waiting trial that queued trial ``number``'s parameters again, if any."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        history = t.system_attrs.get("retry_history") or []
        if history and history[-1] == number:
            return t.number
    return None


def interrupted_line(study: optuna.Study, exc: BaseException, resume: str) -> str:
    """What happened to the running trial and how to go on, in one line.

    Printed after the progress bar has stopped, so it is never cut off.
    """
    name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
    number = exc.trial if isinstance(exc, Interrupted) else None
    if number is None:
        return f"interrupted ({name}) with no trial running; resume with: {resume}"
    queued = None
    with contextlib.suppress(Exception):  # the database may be the reason we stopped
        queued = requeued_as(study, number)
    fate = f"re-queued as trial {queued}" if queued is not None else "not re-queued"
    return f"interrupted ({name}): trial {number} failed and {fate}; resume with: {resume}"


class DeferredSignals:
    """SIGTERM and SIGINT: raised inside a trial, deferred between trials.

    Inside a trial the exception stops training and the trial is failed and
    re-queued. Between trials (asking, telling, holding the budget lock) a
    storage call must not be cut in half, so the first signal only asks the
    loop to stop before its next trial; a second one raises at once. Handlers
    are installed only on the main thread (Python allows no other) and the
    previous ones come back on exit.
    """

    def __init__(self) -> None:
        self.in_trial = False
        self.received: str | None = None
        self.raised = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> DeferredSignals:
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
