"""What a recall floor on the rare class costs and buys, on real chest X-rays.

    python benchmarks/recall_floor.py                 # 3 sampler seeds, the file's budget
    python benchmarks/recall_floor.py --seeds 0 1 2 3 4 --trials 12

Runs ``search_spaces/pneumonia_recall_floor.yaml`` (PneumoniaMNIST, normal
class 1:9 in training) through ``hpo run`` twice per sampler seed: as shipped
(macro F1 under ``min_recall`` on the normal class and a size cap) and with
``objective.constraints`` removed. Everything else is equal: data, model,
search space, TPE and its seed, so both studies draw the same start-up
trials. Prints, per seed, each study's best macro F1 and the normal class's
validation recall in that best trial, and for the unconstrained study also
the best trial that happens to meet the floor (the same rule applied after
the fact). Validation split only; the test split is never read.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import yaml

REPO = Path(__file__).resolve().parents[1]
STUDY_FILE = REPO / "search_spaces" / "pneumonia_recall_floor.yaml"
RARE = 0  # "normal" in PneumoniaMNIST


def recall(trial: optuna.trial.FrozenTrial, cls: int) -> float:
    row = trial.user_attrs["confusion_matrix"][cls]
    return row[cls] / sum(row) if sum(row) else float("nan")


def run(config: dict[str, Any], db: Path, trials: int) -> optuna.Study:
    config["dataset"]["path"] = str(REPO / config["dataset"]["path"])
    study_file = db.with_suffix(".yaml")
    study_file.write_text(yaml.safe_dump(config, sort_keys=False))
    hpo = Path(sys.executable).with_name("hpo")
    subprocess.run(
        [str(hpo), "run", str(study_file), "--storage", f"sqlite:///{db}", "-n", str(trials), "-q"],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return optuna.load_study(study_name=config["study"]["name"], storage=f"sqlite:///{db}")


def describe(trial: optuna.trial.FrozenTrial | None) -> str:
    if trial is None:
        return "none"
    return f"F1 {trial.value:.4f} (trial {trial.number}), normal recall {recall(trial, RARE):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=None, help="default: the file's budget")
    args = parser.parse_args()
    from hpo.results import best_trial, is_feasible

    shipped = yaml.safe_load(STUDY_FILE.read_text())
    floor = float(shipped["objective"]["constraints"]["min_recall"][str(RARE)])
    trials = args.trials or int(shipped["budget"]["trials"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            with_floor = yaml.safe_load(STUDY_FILE.read_text())
            with_floor["sampler"]["seed"] = seed
            with_floor["study"]["name"] = f"floor-{seed}"
            without = yaml.safe_load(STUDY_FILE.read_text())
            without["sampler"]["seed"] = seed
            without["study"]["name"] = f"nofloor-{seed}"
            del without["objective"]["constraints"]
            a = run(with_floor, Path(tmp) / f"a{seed}.db", trials)
            b = run(without, Path(tmp) / f"b{seed}.db", trials)
            done = [t for t in b.trials if t.state == optuna.trial.TrialState.COMPLETE]
            meets = [t for t in done if recall(t, RARE) >= floor]
            post_hoc = max(meets, key=lambda t: t.value or 0.0) if meets else None
            feasible = sum(is_feasible(t) for t in a.trials if t.value is not None)
            rows.append((seed, best_trial(a), feasible, best_trial(b), post_hoc))
    minutes = (time.perf_counter() - t0) / 60
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{STUDY_FILE.name}, TPE, {trials} trials per study, floor: normal recall >= {floor}; "
        f"{minutes:.1f} min; load average {load}"
    )
    for seed, a_best, feasible, b_best, post_hoc in rows:
        print(f"seed {seed}")
        print(f"  with the floor    best {describe(a_best)}; {feasible}/{trials} feasible")
        print(f"  without the floor best {describe(b_best)}")
        print(f"    of which meeting the floor: best {describe(post_hoc)}")


if __name__ == "__main__":
    main()
