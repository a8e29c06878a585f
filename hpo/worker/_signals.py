"""SIGTERM and SIGINT in a worker: stop cleanly, never in the middle of a storage call."""

from __future__ import annotations

import signal
import threading


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT reached the worker: fail the running trial, re-queue it, stop.

    A ``KeyboardInterrupt``, so whatever handles Ctrl-C handles SIGTERM alike.
    """

    @property
    def signal_name(self) -> str:
        return str(self.args[0]) if self.args else "SIGINT"


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
