"""Time and size of the HTML report of a large study.

    python benchmarks/report_speed.py                       # 10,000 trials, SQLite
    python benchmarks/report_speed.py --trials 1000
    python benchmarks/report_speed.py --db /dev/shm/r10k.db # keep the database for reruns
    python benchmarks/report_speed.py --storage journal     # Optuna's journal file instead

Builds a study with hpo's trial attributes (metrics, per-class F1,
confusion matrix, ROC curves, per-epoch F1, worker and device) with
``tests/reports/factories.py``, then times ``write_study_report``: reading
the database, extracting the data, building every figure and writing the
page; and, apart, the read alone (``load_study_data``), which is Optuna's
storage reading every trial with its attributes. Building 10,000 trials in
SQLite goes through Optuna's RDB storage trial by trial (about 0.12 s of
CPU each): pass ``--db`` to build once and reuse the file.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna

from hpo.reports import load_study_data, write_study_report
from tests.reports.factories import build_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(kind: str, path: Path) -> Any:
    if kind == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    return f"sqlite:///{path}"


def timed(func: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage", choices=("sqlite", "journal"), default="sqlite")
    parser.add_argument("--db", type=Path, default=None, help="database file to build or reuse")
    args = parser.parse_args()
    # A RAM-backed folder where there is one: building commits once per trial.
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        path = args.db or Path(tmp) / ("bench.db" if args.storage == "sqlite" else "bench.log")
        storage = open_storage(args.storage, path)
        names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        built = 0.0
        if "big" not in names:
            _, built, _ = timed(lambda: build_study(storage, "big", n_trials=args.trials, seed=1))
        n = len(optuna.load_study(study_name="big", storage=storage).trials)
        write_study_report(open_storage(args.storage, path), "big", Path(tmp) / "warm.html")
        reads, runs = [], []
        for i in range(args.repeats):
            _, wall, cpu = timed(lambda: load_study_data(open_storage(args.storage, path), "big"))
            reads.append((wall, cpu))
            out = Path(tmp) / f"big{i}.html"
            _, wall, cpu = timed(
                lambda out=out: write_study_report(open_storage(args.storage, path), "big", out)
            )
            runs.append((wall, cpu))
        size = out.stat().st_size
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {args.storage}; load average {load}"
    )
    print(f"study of {n} trials " + (f"built in {built:.1f} s" if built else f"reused ({path})"))
    best = min(runs)
    print(
        f"report written in {best[0]:.2f} s wall, {best[1]:.2f} s CPU (best of {args.repeats}; "
        "all: " + ", ".join(f"{w:.2f}" for w, _ in runs) + f"), {size / 1e6:.1f} MB"
    )
    read = min(reads)
    print(
        f"of which reading the trials (load_study_data): {read[0]:.2f} s wall, {read[1]:.2f} s CPU"
    )


if __name__ == "__main__":
    main()
