"""The controller side of ``hpo launch``: start, watch and restart worker processes.

Each worker is an ``hpo worker`` process pinned to one slot (a GPU, or a CPU
share). Workers share the study's trial budget through the database, so the
launcher only keeps them alive: a worker that dies or hangs is replaced (a
bounded number of times per slot), and Ctrl-C stops every worker cleanly,
their running trials failed and queued again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from optuna.trial import TrialState

from hpo import attrs
from hpo._budget import cpu_threads_for
from hpo.errors import FatalError, HpoError
from hpo.worker import RECYCLE_EXIT_CODE

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from hpo.config import StudyConfig
    from hpo.gpus import Slot

MAX_RESTARTS = 3
USER_ERROR = 2


@dataclass
class _Worker:
    slot: Slot
    proc: subprocess.Popen[str] | None = None
    restarts: int = 0
    recycled: int = 0
    exit_codes: list[int] = field(default_factory=list)
    last_error: str = ""
    log_path: Path | None = None


def _worker_command(
    study_file: Path, storage_url: str, budget: int, name: str, per_process: int | None
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "hpo",
        "worker",
        str(study_file),
        "--storage",
        storage_url,
        "--trials",
        str(budget),
        "--worker-name",
        name,
    ]
    if per_process:
        command += ["--max-trials-per-process", str(per_process)]
    return command


def launch_study(
    config: StudyConfig,
    study: optuna.Study,
    *,
    storage_url: str,
    slots: list[Slot],
    budget: int,
    console: Console | None = None,
    quiet: bool = False,
    max_restarts: int = MAX_RESTARTS,
    poll: float = 1.0,
    per_process: int | None = None,
) -> dict[str, Any]:
    """Run ``slots`` workers until the study has ``budget`` finished trials."""
    from hpo.worker import finished_count

    cpu_slots = sum(1 for s in slots if s.gpu is None)
    threads = cpu_threads_for(cpu_slots) if cpu_slots else None
    with tempfile.TemporaryDirectory(prefix="hpo-launch-") as tmp:
        study_file = Path(tmp) / "study.yaml"
        study_file.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
        workers = [_Worker(slot) for slot in slots]

        def start(w: _Worker) -> None:
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **w.slot.env(threads)}
            w.log_path = Path(tmp) / f"{w.slot.name}.{w.restarts}.{w.recycled}.log"
            log = open(w.log_path, "w", encoding="utf-8")  # noqa: SIM115 - owned by the child
            w.proc = subprocess.Popen(
                _worker_command(study_file, storage_url, budget, w.slot.name, per_process),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops them
            )
            log.close()

        for w in workers:
            start(w)
        live = _LiveTable(study, workers, budget, console, quiet)
        try:
            with live:
                while True:
                    for w in workers:
                        if w.proc is None or w.proc.poll() is None:
                            continue
                        code = w.proc.returncode
                        w.exit_codes.append(code)
                        w.last_error = _last_line(w.log_path)
                        w.proc = None
                        if code == 0 or finished_count(study) >= budget:
                            continue
                        if code == RECYCLE_EXIT_CODE:
                            w.recycled += 1
                            start(w)  # a planned fresh process, not a failure
                            continue
                        if code == USER_ERROR:
                            raise HpoError(f"worker {w.slot.name}: {w.last_error}")
                        if w.restarts < max_restarts:
                            w.restarts += 1
                            start(w)
                    live.refresh()
                    if all(w.proc is None for w in workers):
                        break
                    time.sleep(poll)
        except BaseException:
            _stop_all(workers)
            raise
    done = finished_count(study)
    summary = {
        "finished": done,
        "budget": budget,
        "restarts": {w.slot.name: w.restarts for w in workers},
        "recycled": {w.slot.name: w.recycled for w in workers},
        "exit_codes": {w.slot.name: w.exit_codes for w in workers},
    }
    if done < budget:
        reasons = "; ".join(f"{w.slot.name}: {w.last_error}" for w in workers if w.last_error)
        raise FatalError(
            f"workers stopped with {done} of {budget} trials finished "
            f"(restarts used up); {reasons or 'no error recorded'}"
        )
    return summary


def _stop_all(workers: list[_Worker], grace: float = 30.0) -> None:
    """SIGTERM every worker (each fails and re-queues its trial), then wait."""
    for w in workers:
        if w.proc is not None and w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for w in workers:
        if w.proc is None:
            continue
        try:
            w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


def _last_line(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


class _LiveTable:
    """Per-worker and study progress, read from the database every refresh."""

    def __init__(
        self,
        study: optuna.Study,
        workers: list[_Worker],
        budget: int,
        console: Console | None,
        quiet: bool,
    ) -> None:
        self.study, self.workers, self.budget = study, workers, budget
        self.console, self.quiet = console, quiet
        self.live: Any = None
        self.started = time.monotonic()

    def __enter__(self) -> _LiveTable:
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
        from rich.console import Group
        from rich.table import Table

        trials = self.study.get_trials(deepcopy=False)
        counts = {s: 0 for s in TrialState}
        best = None
        for t in trials:
            counts[t.state] += 1
            if t.state == TrialState.COMPLETE and t.value is not None:
                best = t.value if best is None else max(best, t.value)
        running = {
            t.user_attrs.get(attrs.WORKER): t for t in trials if t.state == TrialState.RUNNING
        }
        table = Table(title=f"{self.study.study_name}: workers", header_style="bold")
        for col in ("worker", "GPU", "pid", "state", "trial", "epoch", "last F1", "restarts"):
            table.add_column(col)
        for w in self.workers:
            current = running.get(w.slot.name)
            steps = sorted(current.intermediate_values) if current is not None else []
            table.add_row(
                w.slot.name,
                w.slot.gpu if w.slot.gpu is not None else "cpu",
                str(w.proc.pid) if w.proc is not None else "-",
                "running" if w.proc is not None else "exited",
                str(current.number) if current is not None else "-",
                str(steps[-1] + 1) if steps else "-",
                f"{current.intermediate_values[steps[-1]]:.4f}"
                if steps and current is not None
                else "-",
                str(w.restarts),
            )
        done = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        elapsed = time.monotonic() - self.started
        eta = "-"
        if 0 < done < self.budget:
            eta = f"{elapsed / done * (self.budget - done):.0f} s"
        line = (
            f"done {done}/{self.budget}  running {counts[TrialState.RUNNING]}  "
            f"failed {counts[TrialState.FAIL]}  pruned {counts[TrialState.PRUNED]}  "
            f"best F1 {best:.4f}  ETA {eta}"
            if best is not None
            else f"done {done}/{self.budget}  running {counts[TrialState.RUNNING]}  "
            f"failed {counts[TrialState.FAIL]}  pruned {counts[TrialState.PRUNED]}  ETA {eta}"
        )
        return Group(table, line)
