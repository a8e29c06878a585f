"""Executors: workers started, time to first trial and the fault test, per engine.

    HPO_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        python benchmarks/executors.py [--workers 2] [--trials 8] [--seconds 2.0]

Each engine runs the same Branin benchmark study (trials of ``--seconds``,
no Keras) in a fresh PostgreSQL database, with ``--workers`` workers and a
budget of ``--trials``: ``local`` (processes on this host), ``slurm`` (a job
array on a one-node Slurm started here), ``ray`` (tasks on a local Ray with 4
logical GPUs, one each) and ``k8s`` (the Indexed Job's pods, run as local
processes from its manifest, since no cluster can run here). Time to first
trial runs from ``start()`` to the first trial's start in the database
(engine start-up apart: it is printed on its own). Then the worker of a
running trial is killed the engine's way (SIGKILL; ``scancel`` for a Slurm
task) and the study must end with exactly the budget finished, the killed
trial failed and run again, nothing RUNNING.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
import sqlalchemy as sa

from hpo.config import validate_config
from hpo.executors import K8sExecutor, LocalExecutor, Plan, RayExecutor, SlurmExecutor
from hpo.gpus import plan_slots
from hpo.storage import open_storage
from hpo.studies import create_or_resume
from tests.executors.engines import (
    Unavailable,
    local_ray,
    mount_config_map,
    run_pod,
    single_node_slurm,
)
from tests.executors.fault import check_exact, wait_for_running

ENGINES = ("local", "slurm", "ray", "k8s")
FAST_HEARTBEAT = {"HPO_HEARTBEAT_INTERVAL": "1", "HPO_GRACE_PERIOD": "4"}


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"hpo_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
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


def engine_context(engine: str) -> AbstractContextManager[Any]:
    if engine == "slurm":
        return single_node_slurm()
    if engine == "ray":
        return local_ray(num_cpus=max(2, os.cpu_count() or 2), num_gpus=4)
    return nullcontext()


def run_engine(engine: str, url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    name = f"bench-{engine}"
    config = validate_config(
        {
            "study": {"name": name},
            "objective": {"benchmark": "branin", "seconds": args.seconds},
            "sampler": {"name": "random", "seed": 0},
            "budget": {"trials": args.trials},
        }
    )
    study = create_or_resume(config, url)
    plan = Plan(
        config,
        url,
        workers=args.workers,
        gpus=engine == "ray",
        per_process=None,
        job_dir=work / engine,
        env=FAST_HEARTBEAT,
    )
    kill: Callable[[optuna.trial.FrozenTrial], None]
    finish: Callable[[], object]
    t0 = dt.datetime.now()  # Optuna stamps trials with local naive time
    if engine == "k8s":
        k8s = K8sExecutor(plan, image="hpo:bench", kubectl="")
        k8s.write()
        mount = mount_config_map(k8s, work / "etc-hpo")
        pods = {i: run_pod(k8s, i, mount) for i in range(args.workers)}

        def kill(trial: optuna.trial.FrozenTrial) -> None:
            index = int(trial.user_attrs["worker"].removeprefix("k8s-"))
            pods[index].send_signal(signal.SIGKILL)
            pods[index].wait()
            pods[index] = run_pod(k8s, index, mount)  # the Job's retry of that index

        def finish() -> object:
            return [p.communicate(timeout=600) for p in pods.values()]

    else:
        executor: Any
        if engine == "local":
            executor = LocalExecutor(plan, study, plan_slots("none", args.workers), poll=0.3)
        elif engine == "ray":
            executor = RayExecutor(plan, study, poll=0.3)
        else:
            executor = SlurmExecutor(plan, poll=0.5)
        executor.start()
        if engine == "slurm":

            def kill(trial: optuna.trial.FrozenTrial) -> None:
                task = trial.user_attrs["worker"].removeprefix("slurm-")
                subprocess.run(["scancel", task], check=True)

        else:

            def kill(trial: optuna.trial.FrozenTrial) -> None:
                os.kill(trial.user_attrs["pid"], signal.SIGKILL)

        def finish() -> object:
            return executor.wait(timeout=600)

    storage = open_storage(url)
    victim = wait_for_running(storage, name, timeout=300)
    kill(victim)
    finish()
    total = (dt.datetime.now() - t0).total_seconds()
    try:
        result = check_exact(storage, name, args.trials, victim)
        verdict = f"exact: trial {victim.number} failed, re-run as {result.retry.number}"
        trials = result.trials
    except AssertionError as exc:
        verdict = f"FAILED: {exc}"
        trials = optuna.load_study(study_name=name, storage=storage).trials
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    workers = {t.user_attrs.get("worker") for t in trials}
    processes = {(t.user_attrs.get("host"), t.user_attrs.get("pid")) for t in trials}
    return {
        "first": (min(starts) - t0).total_seconds() if starts else float("nan"),
        "total": total,
        "workers": f"{len(workers)} ({len(processes)} proc)",
        "finished": sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials),
        "verdict": verdict,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args()
    admin = os.environ.get("HPO_TEST_POSTGRES_URL")
    if not admin:
        sys.exit("set HPO_TEST_POSTGRES_URL: a PostgreSQL server to create databases on")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"optuna {optuna.__version__}; Branin trials of {args.seconds:g} s, "
        f"{args.workers} workers, budget {args.trials}; heartbeat 1 s, grace 4 s; "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    header = (
        "engine | engine up s | workers (processes) | first trial s | total s | finished | "
        "fault test: one worker killed mid-trial"
    )
    print(header)
    print("-" * len(header))
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory(prefix="hpo-bench-") as tmp:
            t0 = time.perf_counter()
            try:
                context = engine_context(engine)
                with context as engine_env, fresh_database(admin) as url:
                    if isinstance(engine_env, dict):
                        os.environ.update(engine_env)  # SLURM_CONF for sbatch and scancel
                    up = time.perf_counter() - t0
                    row = run_engine(engine, url, args, Path(tmp))
            except Unavailable as exc:
                print(f"{engine:6} | skipped: {exc}")
                continue
        print(
            f"{engine:6} | {up:11.1f} | {row['workers']:19} | {row['first']:13.1f} | "
            f"{row['total']:7.1f} | {row['finished']:3d}/{args.trials:<4d} | {row['verdict']}"
        )


if __name__ == "__main__":
    main()
