"""A long study end to end: 200 trials, 2 workers, PostgreSQL, worker memory watched.

    HPO_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        python benchmarks/long_run.py [--trials 200] [--workers 2] [--epochs 2]
        [--per-process 20]

Runs ``hpo launch`` on the quickstart study (digits, small CNN, TPE, median
pruner) with ``--epochs`` training epochs per trial, in a fresh PostgreSQL
database, and samples the resident memory of every worker process twice a
second. Workers start a fresh process every ``--per-process`` trials, which
is what bounds their memory: TensorFlow keeps a little of every model it
built. Prints the peak memory of each worker process, the bound (the
highest peak any process reached, which a longer run does not raise), and
checks the database: exactly ``--trials`` finished trials, none left
running, no trial number twice. Exit code 1 if any check fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
import sqlalchemy as sa
import yaml
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the launcher's worker processes)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except OSError:
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


class Sampler(threading.Thread):
    """Peak resident memory per worker process, sampled until stopped."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peaks, self.stop = root, {}, threading.Event()
        self.order: list[int] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in children(self.root):
                mb = rss_mb(pid)
                if mb is None or mb < 200:  # not yet a worker (a shell, a starting python)
                    continue
                if pid not in self.peaks:
                    self.order.append(pid)
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), mb)
            self.stop.wait(0.5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--per-process", type=int, default=20)
    args = p.parse_args()
    admin = os.environ.get("HPO_TEST_POSTGRES_URL")
    if not admin:
        raise SystemExit("set HPO_TEST_POSTGRES_URL to a PostgreSQL server (see the docstring)")

    name = f"hpo_long_{uuid.uuid4().hex[:8]}"
    # pre-ping: the admin connection idles for the whole run, and a server restart
    # meanwhile must not stop the clean-up.
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    study = yaml.safe_load((REPO / "search_spaces" / "quickstart.yaml").read_text())
    study["training"]["head_epochs"] = args.epochs
    study["study"]["name"] = "long-run"
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="hpo-long-") as tmp:
            path = Path(tmp) / "study.yaml"
            path.write_text(yaml.safe_dump(study))
            cmd = [
                sys.executable,
                "-m",
                "hpo",
                "launch",
                str(path),
                "--gpus",
                "none",
                "--workers-per-gpu",
                str(args.workers),
                "--trials",
                str(args.trials),
                "--storage",
                url,
                "--max-trials-per-process",
                str(args.per_process),
                "--quiet",
            ]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            sampler = Sampler(proc.pid)
            sampler.start()
            _, err = proc.communicate()
            wall = time.perf_counter() - t0
            sampler.stop.set()
            sampler.join()
            if proc.returncode != 0:
                print(err.decode()[-3000:])
                failed = True

        s = optuna.load_study(study_name="long-run", storage=url)
        trials = s.get_trials(deepcopy=False)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name] = states.get(t.state.name, 0) + 1
        finished = sum(t.state.is_finished() for t in trials)
        numbers = [t.number for t in trials]
        running = states.get("RUNNING", 0) + states.get("WAITING", 0)
        complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
        del s
    finally:
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": name},
            )
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()

    peaks = [sampler.peaks[pid] for pid in sampler.order]
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"quickstart data (digits 16 px, small CNN), {args.epochs} epochs per trial, "
        f"TPE + median pruner, {args.workers} CPU workers, PostgreSQL, a fresh worker process "
        f"every {args.per_process} trials"
    )
    print(f"wall {wall / 60:.1f} min, {args.trials / (wall / 60):.1f} trials/min")
    best = f"; best macro F1 {max(complete):.4f}" if complete else ""
    print("trials: " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(states.items())) + best)
    print(f"worker processes: {len(peaks)}; peak RSS per process, in start order (MB):")
    for i in range(0, len(peaks), 10):
        print("   " + " ".join(f"{mb:6.0f}" for mb in peaks[i : i + 10]))
    if peaks:
        half = max(1, len(peaks) // 2)
        early, late = max(peaks[:half]), max(peaks[half:] or peaks[:half])
        print(
            f"memory bound: {max(peaks):.0f} MB per worker process "
            f"(first half of the run {early:.0f} MB, second half {late:.0f} MB)"
        )
        if late > early * 1.15:
            print("FAIL: worker memory kept growing across process restarts")
            failed = True
    checks = {
        f"exactly {args.trials} finished": finished == args.trials,
        "none left running or waiting": running == 0,
        "no trial number twice": len(numbers) == len(set(numbers)),
    }
    for label, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {label}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
