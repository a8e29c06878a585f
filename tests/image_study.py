"""One tiny image study with real Keras training, built once per test session.

Tests that read a trained study (the CLI end to end, the upgrade path, the
reports, export and predict) share it instead of each training its own. One
SQLite database holds two studies:

- a copy of ``tests/fixtures/study-0.1.0.db`` (written by hpo 0.1.0) continued
  by one more trial with today's hpo: the upgrade path;
- a fresh 10-class study of digit PNGs in class folders named ``digit <k>``
  (the ``<``/``>`` must be escaped by every page), two trials of ``hpo run``.

Tests may read both and add to them (export records its use of the test
split) but never change what is already stored.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from tests.helpers import hpo, write

FIXTURES = Path(__file__).parent / "fixtures"
OLD_NAME = "fixture-0.1.0"
OLD_FILE = FIXTURES / "study-0.1.0.yaml"
NAME = "digits <e2e>"
N_CLASSES = 10
PER_CLASS = 30
SIZE = 16
TRIALS = 2
EPOCHS = 5


def class_name(k: int) -> str:
    return f"digit <{k}>"


def config(data: Path) -> dict[str, Any]:
    """Seeded so that every trial scores well above chance (0.1 for 10 classes)."""
    return {
        "study": {"name": NAME},
        "dataset": {
            "source": "directory",
            "path": str(data),
            "image_size": SIZE,
            "channels": 1,
            "test_fraction": 0.25,
        },
        "model": {"backbone": "small_cnn", "weights": "none"},
        "training": {"head_epochs": EPOCHS, "finetune_epochs": 0, "validate_every_epoch": True},
        "search_space": {
            "learning_rate": {"type": "float", "low": 2e-3, "high": 1e-2, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.3},
            "batch_size": {"type": "categorical", "choices": [16]},
        },
        "sampler": {"name": "random", "seed": 3},
        "budget": {"trials": TRIALS},
    }


@dataclass(frozen=True)
class ImageStudy:
    url: str  # the SQLite database holding both studies
    name: str  # the fresh study
    data: Path  # its class folders
    root: Path
    run: subprocess.CompletedProcess[str]  # `hpo run` of the fresh study
    old_name: str  # the study written by hpo 0.1.0
    old_trials: list[tuple[int, str, float | None, dict[str, Any]]]  # before it was continued
    continued: subprocess.CompletedProcess[str]  # `hpo run --trials 1` on it


def write_digit_pngs(root: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for k in range(N_CLASSES):
        folder = root / class_name(k)
        folder.mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(digits.target == k)[:PER_CLASS]):
            pixels = (digits.images[i] / 16.0 * 255.0).round().astype(np.uint8)
            Image.fromarray(pixels).resize((SIZE, SIZE)).save(folder / f"{j:03d}.png")


def trial_rows(url: str, name: str) -> list[tuple[int, str, float | None, dict[str, Any]]]:
    study = optuna.load_study(study_name=name, storage=url)
    return [(t.number, t.state.name, t.value, t.params) for t in study.trials]


def build(root: Path) -> ImageStudy:
    db = root / "hpo.db"
    shutil.copy(FIXTURES / "study-0.1.0.db", db)
    url = f"sqlite:///{db}"
    old_trials = trial_rows(url, OLD_NAME)
    continued = hpo("run", str(OLD_FILE), "--storage", url, "--trials", "1", "-q")
    data = root / "data"
    write_digit_pngs(data)
    run = hpo("run", str(write(root, config(data))), "--storage", url, "--quiet")
    return ImageStudy(
        url=url,
        name=NAME,
        data=data,
        root=root,
        run=run,
        old_name=OLD_NAME,
        old_trials=old_trials,
        continued=continued,
    )
