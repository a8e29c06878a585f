"""Worker scaling: trials per minute with 1, 2, 4 and 8 worker processes.

    python benchmarks/workers.py [--seconds 2.0] [--per-worker 6]

Each worker process runs hpo's worker loop (budget lock, ask, heartbeat,
tell) with an objective that sleeps a fixed time, so the figures measure
the loop and the database, not training. For each storage (PostgreSQL from
HPO_TEST_POSTGRES_URL, SQLite in a temporary file) and each worker count N:
trials per minute, the ratio to N times one worker's throughput, the storage
time per trial (wall time of a trial minus the objective's), and the lost or
duplicated trials (there must be none: the study ends with exactly the
budget finished and nothing left running).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

STUDY = {
    "study": {"name": "scaling"},
    "dataset": {"source": "digits", "image_size": 8, "channels": 1},
    "model": {"backbone": "small_cnn", "weights": "none"},
    "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    "sampler": {"name": "tpe", "seed": 0},
}


def _worker(url: str, budget: int, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    os.environ.setdefault("HPO_HEARTBEAT_INTERVAL", "5")
    from hpo.config import validate_config
    from hpo.storage import open_storage
    from hpo.studies import make_study
    from hpo.worker import run_worker

    config = validate_config({**STUDY, "budget": {"trials": budget}})
    study = make_study(config, open_storage(url, heartbeat=True))
    busy = 0.0

    def objective(trial: optuna.Trial) -> float:
        nonlocal busy
        x = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        t0 = time.perf_counter()
        time.sleep(seconds)
        busy += time.perf_counter() - t0
        return -abs(x - 1e-3)

    t0 = time.perf_counter()
    summary = run_worker(
        config, study, n_trials=None, budget=budget, storage_url=url, objective=objective
    )
    out.put((summary.trials_run, time.perf_counter() - t0, busy))


def run(url: str, workers: int, per_worker: int, seconds: float) -> dict[str, float]:
    budget = workers * per_worker
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    # Create the study first so worker start-up is not part of the timing race.
    from hpo.config import validate_config
    from hpo.storage import open_storage
    from hpo.studies import make_study

    make_study(validate_config({**STUDY, "budget": {"trials": budget}}), open_storage(url))
    procs = [
        ctx.Process(target=_worker, args=(url, budget, seconds, queue)) for _ in range(workers)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    trials = sum(r[0] for r in results)
    loop = sum(r[1] for r in results)
    busy = sum(r[2] for r in results)
    study = optuna.load_study(study_name="scaling", storage=url)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    left = [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in study.trials]
    # Throughput between the first trial's start and the last one's end, so that
    # process start-up (imports) is not counted against the storage.
    first = min(t.datetime_start for t in finished if t.datetime_start)
    last = max(t.datetime_complete for t in finished if t.datetime_complete)
    span = max((last - first).total_seconds(), 1e-9)
    return {
        "trials": trials,
        "wall": wall,
        "per_min": len(finished) / span * 60.0,
        "storage_s": (loop - busy) / max(trials, 1),
        "lost": budget - len(finished) + len(left),
        "dup": len(numbers) - len(set(numbers)),
    }


def fresh_postgres(admin: str) -> tuple[str, sa.Engine, str]:
    url = sa.make_url(admin)
    name = f"hpo_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    return url.set(database=name).render_as_string(hide_password=False), engine, name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--per-worker", type=int, default=10)
    parser.add_argument("--workers", default="1,2,4,8")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    backends = []
    admin = os.environ.get("HPO_TEST_POSTGRES_URL")
    if admin:
        backends.append("postgresql")
    backends.append("sqlite")
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"optuna {optuna.__version__}; objective sleeps {args.seconds:g} s; "
        f"{args.per_worker} trials per worker; budget = workers x {args.per_worker}"
    )
    print("storage    | workers | trials/min | ratio to N x 1 | loop s/trial | lost | dup")
    print("-----------|---------|------------|----------------|--------------|------|----")
    for backend in backends:
        one = None
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp:
                if backend == "sqlite":
                    url, cleanup = f"sqlite:///{tmp}/bench.db", None
                else:
                    url, engine, name = fresh_postgres(admin or "")
                    cleanup = (engine, name)
                r = run(url, n, args.per_worker, args.seconds)
                if cleanup is not None:
                    engine, name = cleanup
                    with engine.connect() as conn:
                        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            one = one or r["per_min"]
            ratio = r["per_min"] / (n * one)
            print(
                f"{backend:<10} | {n:>7} | {r['per_min']:>10.1f} | {ratio:>14.2f} | "
                f"{r['storage_s']:>12.3f} | {int(r['lost']):>4} | {int(r['dup']):>3}",
                flush=True,
            )


if __name__ == "__main__":
    main()
