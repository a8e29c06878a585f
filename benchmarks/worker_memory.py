"""Worker memory over a long run: resident memory after each trial.

    python benchmarks/worker_memory.py [--trials 20]

Runs hpo's worker loop in this process on a small real study (digits, the
small CNN, a fresh Keras model every trial) and prints the resident set size
after each trial. TensorFlow state is cleared between trials; without that
the graph of every past model stays in memory (tensorflow#36465).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    from hpo.config import validate_config
    from hpo.storage import open_storage
    from hpo.studies import make_study
    from hpo.worker import run_worker

    config = validate_config(
        {
            "study": {"name": "memory"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 60},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 2},
            "search_space": {
                "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
                "dense_units": {"type": "int", "low": 32, "high": 256, "step": 32},
                "batch_size": {"type": "categorical", "choices": [16, 32]},
            },
            "sampler": {"name": "tpe", "seed": 0},
        }
    )
    rows: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        study = make_study(config, open_storage(f"sqlite:///{tmp}/m.db"))
        run_worker(
            config, study, n_trials=args.trials, callbacks=[lambda s, t: rows.append(rss_mb())]
        )
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"digits 16 px, small CNN, 2 epochs per trial, {args.trials} trials in one worker"
    )
    print("trial | RSS MB")
    for i, mb in enumerate(rows):
        print(f"{i:>5} | {mb:7.1f}")
    settle = rows[min(4, len(rows) - 1)]
    print(
        f"growth from trial 5 to trial {len(rows)}: {rows[-1] - settle:+.1f} MB "
        f"({(rows[-1] - settle) / max(len(rows) - 5, 1):+.2f} MB per trial)"
    )


if __name__ == "__main__":
    main()
