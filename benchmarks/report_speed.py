"""Time to write the HTML report of a 1,000-trial study.

    python benchmarks/report_speed.py [--trials 1000]

Builds a study with hpo's trial attributes (metrics, per-class F1,
confusion matrix, ROC curves, per-epoch F1, worker and device) in a
temporary SQLite database, then times ``write_study_report``: reading the
database, extracting the data, building every figure and writing the page.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpo.reports import write_study_report
from tests.reports.factories import build_study


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        build_study(url, "big", n_trials=args.trials, seed=1)
        built = time.perf_counter() - t0
        times = []
        for i in range(args.repeats):
            start = time.perf_counter()
            path = write_study_report(url, "big", Path(tmp) / f"big{i}.html")
            times.append(time.perf_counter() - start)
        size = path.stat().st_size
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite"
    )
    print(f"study of {args.trials} trials built in {built:.1f} s")
    print(
        f"report written in {min(times):.2f} s (best of {args.repeats}; all: "
        + ", ".join(f"{t:.2f}" for t in times)
        + f"), {size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
