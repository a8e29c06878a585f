"""A real, tiny study to export: digit PNGs in class folders, two trials of `hpo run`.

Class names carry ``<`` and ``>`` so every page and table must escape them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import hpo, write

N_CLASSES = 4
PER_CLASS = 30
SIZE = 16


def class_name(k: int) -> str:
    return f"digit <{k}>"


@dataclass(frozen=True)
class TinyStudy:
    url: str
    name: str
    data: Path
    root: Path


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


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    root = tmp_path_factory.mktemp("export-study")
    data = root / "data"
    write_digit_pngs(data)
    config = {
        "study": {"name": "digits <export>"},
        "dataset": {
            "source": "directory",
            "path": str(data),
            "image_size": SIZE,
            "channels": 1,
            "test_fraction": 0.25,
        },
        "model": {"backbone": "small_cnn", "weights": "none"},
        "training": {"head_epochs": 10, "finetune_epochs": 0},
        "search_space": {
            "learning_rate": {"type": "float", "low": 2e-3, "high": 1e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [16]},
        },
        "sampler": {"name": "random", "seed": 3},
        "budget": {"trials": 2},
    }
    url = f"sqlite:///{root / 'hpo.db'}"
    result = hpo("run", str(write(root, config)), "--storage", url, "--quiet")
    assert result.returncode == 0, result.stderr
    return TinyStudy(url=url, name="digits <export>", data=data, root=root)
