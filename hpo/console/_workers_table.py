"""The live table of ``hpo launch``: one row per worker slot, study totals below.

Rows are plain data the launcher hands over (``WorkerRow``); trials are read
from the database at every refresh, like any report, so the table shows
what every host's workers wrote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from hpo import keys
from hpo.results import FINISHED, best_of

if TYPE_CHECKING:
    import optuna
    from rich.console import Console


@dataclass(frozen=True)
class WorkerRow:
    """What the table shows of one worker slot, apart from its trial."""

    slot: str  # the slot name, also the worker name its trials carry
    device: str  # "1 NVIDIA A100 80 GiB", a GPU index, or "cpu"
    pid: int | None  # None while no process runs in the slot
    ended: str | None  # why the last process ended ("exit code 1"); None while one runs
    restarts: int


class WorkersTable:
    """Per-worker and study progress, read from the database every refresh."""

    def __init__(
        self,
        study: optuna.Study,
        rows: Callable[[], list[WorkerRow]],
        budget: int,
        console: Console | None,
        quiet: bool,
    ) -> None:
        self.study, self.rows, self.budget = study, rows, budget
        self.console, self.quiet = console, quiet
        self.live: Any = None
        self.started = time.monotonic()
        self.done_at_start: int | None = None
        self.last: Any = None

    def __enter__(self) -> WorkersTable:
        if not self.quiet and self.console is not None:
            from rich.live import Live

            self.live = Live(self.render(), console=self.console, refresh_per_second=2)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(None, None, None)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Any:
        """The table; while the database is away, the last one with a note."""
        from rich.console import Group
        from rich.text import Text

        try:
            trials = self.study.get_trials(deepcopy=False)
        except Exception:
            note = Text("database unreachable; workers are retrying", style="yellow")
            return Group(self.last, note) if self.last is not None else note
        self.last = self._render(trials)
        return self.last

    def _render(self, trials: list[optuna.trial.FrozenTrial]) -> Any:
        from rich.console import Group
        from rich.table import Table

        counts = {s: 0 for s in TrialState}
        for t in trials:
            counts[t.state] += 1
        best_trial = best_of(trials, maximize=True)
        best = best_trial.value if best_trial is not None else None
        running = {
            t.user_attrs.get(keys.WORKER): t for t in trials if t.state == TrialState.RUNNING
        }
        table = Table(title=f"{self.study.study_name}: workers", header_style="bold")
        for col in ("slot", "GPU", "pid", "trial", "epoch", "last F1", "state", "restarts"):
            table.add_column(col)
        for row in self.rows():
            current = running.get(row.slot)
            steps = sorted(current.intermediate_values) if current is not None else []
            if row.ended is None:
                state = "training" if current is not None else "waiting"
            else:
                state = row.ended
            table.add_row(
                row.slot,
                row.device,
                str(row.pid) if row.pid is not None else "-",
                str(current.number) if current is not None else "-",
                str(steps[-1] + 1) if steps else "-",
                f"{current.intermediate_values[steps[-1]]:.4f}"
                if steps and current is not None
                else "-",
                state,
                str(row.restarts),
            )
        done = sum(counts[s] for s in FINISHED)
        if self.done_at_start is None:
            self.done_at_start = done
        new = done - self.done_at_start
        elapsed = time.monotonic() - self.started
        eta = (
            f"{elapsed / new * (self.budget - done):.0f} s"
            if new > 0 and done < self.budget
            else "-"
        )
        parts = [
            f"done {done}/{self.budget}",
            f"running {counts[TrialState.RUNNING]}",
            f"queued {counts[TrialState.WAITING]}",
            f"failed {counts[TrialState.FAIL]}",
            f"pruned {counts[TrialState.PRUNED]}",
            f"best F1 {best:.4f}" if best is not None else "best F1 -",
            f"ETA {eta}",
        ]
        return Group(table, "  ".join(parts))
