"""A clinic's constraints: recall floors and a size cap decide which trial may be best.

One real study on a 1:9 digits set (real tiny training, real SQLite): a recall
floor on the rare class makes some trials infeasible, the best trial is a
feasible one, and a floor naming no class is refused before anything is stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from hpo import keys
from hpo.config import validate_config
from hpo.errors import ConfigError
from hpo.metrics import constraint_values, recall_per_class
from hpo.results import best_trial, is_feasible
from tests.helpers import hpo, write

NAME = "rare-floor"
RARE, COMMON = "rare", "common"
TRIALS = 5


def imbalanced_digits(path: Path) -> Path:
    """Digit 0 as the rare class (20 images) against 1s to 9s (180): 1:9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    rare = rng.choice(np.flatnonzero(digits.target == 0), 20, replace=False)
    common = rng.choice(np.flatnonzero(digits.target != 0), 180, replace=False)
    idx = np.concatenate([rare, common])
    images = (digits.images[idx] / 16.0 * 255.0).round().astype(np.uint8)
    labels = np.concatenate([np.zeros(20, np.int64), np.ones(180, np.int64)])
    np.savez(path, train_images=images, train_labels=labels, class_names=np.array([RARE, COMMON]))
    return path


def study_file(data: Path, floors: dict[str, float], max_params: int | None) -> dict[str, Any]:
    return {
        "study": {"name": NAME},
        "dataset": {"source": "npz", "path": str(data), "image_size": 16, "channels": 1},
        "model": {"backbone": "small_cnn", "weights": "none"},
        "training": {"head_epochs": 3, "finetune_epochs": 0, "class_weights": "none"},
        # From a rate too low to learn anything in 3 epochs (every image called
        # "common": rare recall 0) to one that learns the 0s.
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-6, "high": 2e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [16]},
        },
        "objective": {"constraints": {"min_recall": floors, "max_params": max_params}},
        "sampler": {"name": "random", "seed": 1},
        "budget": {"trials": TRIALS},
    }


@pytest.fixture(scope="module")
def constrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    root = tmp_path_factory.mktemp("constraints")
    data = imbalanced_digits(root / "digits_1to9.npz")
    url = f"sqlite:///{root / 'hpo.db'}"
    # The floor sits just under 1: the 3 rare validation images must all be found.
    cfg = write(root, study_file(data, {RARE: 0.99}, 10_000_000))
    run = hpo("run", str(cfg), "--storage", url, "-q", timeout=600)
    assert run.returncode == 0, run.stderr
    return url, data, run.stderr


def test_a_recall_floor_makes_some_trials_infeasible_and_best_is_feasible(
    constrained: tuple[str, Path, str],
) -> None:
    url, _, _ = constrained
    study = optuna.load_study(study_name=NAME, storage=url)
    # The run's own trials (another test here adds one after them).
    done = [t for t in study.trials[:TRIALS] if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == TRIALS
    for t in done:
        assert set(t.constraints) == {f"min_recall:{RARE}", "max_params"}
        recall = recall_per_class(t.user_attrs[keys.CONFUSION])[0]
        assert t.constraints[f"min_recall:{RARE}"] == pytest.approx(0.99 - (recall or 0.0))
        assert t.user_attrs[keys.N_PARAMS] > 0
        assert t.constraints["max_params"] < 0, "ten million parameters is a loose cap"
    feasible = [t for t in done if is_feasible(t)]
    assert feasible and len(feasible) < len(done), [t.constraints for t in done]
    best = best_trial(study)
    assert best is not None and is_feasible(best)
    assert best.value == max(t.value for t in feasible if t.value is not None)


def test_hpo_best_shows_a_feasible_trial_when_an_infeasible_one_scored_higher(
    constrained: tuple[str, Path, str],
) -> None:
    url, _, _ = constrained
    study = optuna.load_study(study_name=NAME, storage=url)
    feasible = best_trial(study)
    assert feasible is not None and feasible.value is not None
    # A model that scores above every feasible one but misses rare cases: a clinic
    # could not use it, so it must not become "best" anywhere.
    extra = optuna.trial.create_trial(
        value=min(1.0, feasible.value + 0.05),
        params=feasible.params,
        distributions=feasible.distributions,
        user_attrs=feasible.user_attrs,
        # What trial.set_constraint stores; a rare-class recall 0.5 below the floor.
        system_attrs={f"constraints:min_recall:{RARE}": 0.5, "constraints:max_params": -0.9},
    )
    study.add_trial(extra)
    extra_number = len(study.trials) - 1
    assert study.trials[extra_number].value is not None
    assert study.trials[extra_number].value > feasible.value
    shown = hpo("best", NAME, "--storage", url)
    assert shown.returncode == 0, shown.stderr
    assert f"trial {feasible.number}" in shown.stdout, shown.stdout
    assert f"trial {extra_number}" not in shown.stdout, shown.stdout


def test_a_small_validation_class_is_warned_about_with_its_counts(
    constrained: tuple[str, Path, str],
) -> None:
    _, _, stderr = constrained
    lines = [ln for ln in stderr.splitlines() if "validation split holds" in ln]
    assert len(lines) == 1, stderr
    assert f"3 {RARE}" in lines[0] and "val_fraction" in lines[0], lines[0]


def test_an_unknown_class_in_a_floor_is_refused_before_the_study_exists(
    constrained: tuple[str, Path, str], tmp_path: Path
) -> None:
    _, data, _ = constrained
    url = f"sqlite:///{tmp_path / 'refused.db'}"
    cfg = write(tmp_path, study_file(data, {"Moderate_Demented": 0.8}, None))
    run = hpo("run", str(cfg), "--storage", url, "-q")
    assert run.returncode == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert "min_recall" in last and "Moderate_Demented" in last and "rare, common" in last, last
    assert optuna.study.get_all_study_names(url) == []


@pytest.mark.parametrize(
    ("constraints", "field"),
    [
        ({"min_recall": {RARE: 0.0}}, "min_recall"),
        ({"min_recall": {RARE: 1.2}}, "min_recall"),
        ({"max_params": 0}, "max_params"),
    ],
)
def test_out_of_range_constraints_are_refused(constraints: dict[str, Any], field: str) -> None:
    data = study_file(Path("/nowhere.npz"), {}, None)
    data["objective"]["constraints"] = constraints
    with pytest.raises(ConfigError, match=field):
        validate_config(data, source="study.yaml")


def test_constraint_values_follow_optunas_sign_convention() -> None:
    confusion = [[3, 1], [0, 6]]  # rare recall 0.75
    values = constraint_values(
        [RARE, COMMON], confusion, min_recall={RARE: 0.8}, max_params=1000, n_params=500
    )
    assert values == {f"min_recall:{RARE}": pytest.approx(0.05), "max_params": -0.5}
    absent = constraint_values([RARE, COMMON], [[0, 0], [0, 6]], min_recall={RARE: 0.5})
    assert absent == {f"min_recall:{RARE}": 0.5}, "no rare image in validation: not shown met"


def test_the_report_marks_infeasible_trials_and_shows_validation_support(
    constrained: tuple[str, Path, str], tmp_path: Path
) -> None:
    from hpo.reports import write_study_report
    from hpo.reports._bounded import history_info

    url, _, _ = constrained
    study = optuna.load_study(study_name=NAME, storage=url)
    broken = sorted(t.number for t in study.trials if t.value is not None and not is_feasible(t))
    info = history_info(study.trials, maximize=True)
    assert info.infeasible == broken and broken
    assert not set(info.best_numbers[:-1]) & set(broken), "the best-so-far line skips them"
    page = write_study_report(url, NAME, tmp_path / "report.html").read_text()
    assert "infeasible (constraint broken)" in page
    assert "val images scored" in page and "best trial recall" in page
