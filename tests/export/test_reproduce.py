"""The exported model is the trial it names, and ``hpo export`` says when it is not.

Real trainings and real SQLite studies: the session's image study (no
augmentation, ``tests/image_study.py``) and one of the same recipe with
``augment: true``. Exports run on private copies of the shared study, which
stays as it was.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from hpo.export import CARD_FILE, METADATA_FILE, bootstrap_se, compare_validation
from tests.helpers import run_cli, write
from tests.image_study import SIZE, ImageStudy, write_digit_pngs
from tests.image_study import config as image_config

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Study:
    url: str
    name: str


def copy_of(study: ImageStudy | Study, root: Path) -> str:
    """A private copy of a study's database: exports here leave the original alone."""
    url = f"sqlite:///{root / 'copy.db'}"
    optuna.copy_study(from_study_name=study.name, from_storage=study.url, to_storage=url)
    return url


def cli(*args: str) -> None:
    """``hpo`` in this process, where a fixture has no capsys; it must succeed."""
    from hpo.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        assert not exc.code, f"hpo {' '.join(args)} exited with {exc.code}"


@pytest.fixture(scope="module")
def augmented_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """One trial of the image study's recipe with augmentation on."""
    root = tmp_path_factory.mktemp("augmented-study")
    write_digit_pngs(root / "data")
    config = image_config(root / "data")
    config["study"]["name"] = "digits augmented"
    config["training"]["augment"] = True
    config["budget"]["trials"] = 1
    url = f"sqlite:///{root / 'hpo.db'}"
    cli("run", str(write(root, config)), "--storage", url, "--quiet")
    return Study(url=url, name="digits augmented")


def export(
    capsys: Any, url: str, name: str, out: Path, *extra: str
) -> tuple[dict[str, Any], str, str]:
    code, stdout, stderr = run_cli(
        capsys,
        "export",
        name,
        "--storage",
        url,
        "--out",
        str(out),
        "--bootstrap",
        "0",
        "--gradcam-per-class",
        "0",
        *extra,
    )
    assert code == 0, stderr
    return json.loads((out / METADATA_FILE).read_text()), stdout, stderr


@pytest.mark.parametrize("which", ["image_study", "augmented_study"])
def test_export_reproduces_the_trials_validation_score(
    which: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: Any
) -> None:
    study: ImageStudy | Study = request.getfixturevalue(which)
    url = copy_of(study, tmp_path)
    best = optuna.load_study(study_name=study.name, storage=url).best_trial
    meta, stdout, stderr = export(capsys, url, study.name, tmp_path / "model")

    check = meta["validation_check"]
    assert check["trial"] == best.number and check["trial_value"] == best.value
    assert check["retrained_value"] == pytest.approx(best.value, abs=1e-6)
    assert check["held_out"] and check["within_noise"] and check["warning"] is None
    assert meta["validation"]["macro_f1"] == check["retrained_value"]
    assert meta["training"]["augment"] is (which == "augmented_study")
    assert meta["training"]["epochs_run"] == 5
    assert meta["recipe"]["source"] == "trial"
    assert f"validation macro F1: trial {best.number} {best.value:.4f}, " in stdout
    assert f"exported model {best.value:.4f}" in stdout and "warning" not in stderr
    card = (tmp_path / "model" / CARD_FILE).read_text()
    assert 'id="validation-check"' in card and "it is the model the search scored" in card


def test_export_warns_when_the_model_is_not_the_trial(
    image_study: ImageStudy, tmp_path: Path, capsys: Any
) -> None:
    # A trial whose stored score the retrained model cannot match: its parameters,
    # retrained here, score what the search's best trial scores, far from 0.02.
    url = copy_of(image_study, tmp_path)
    study = optuna.load_study(study_name=image_study.name, storage=url)
    best = study.best_trial
    full = {**best.user_attrs[keys.PARAMS_FULL]}
    # no other trial has these exact parameters; still inside the searched range
    full["learning_rate"] *= 0.9999 if full["learning_rate"] > 5e-3 else 1.0001
    recipe = {**best.user_attrs[keys.RECIPE], "params": full}
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.COMPLETE,
            value=0.02,
            params={**best.params, "learning_rate": full["learning_rate"]},
            distributions=best.distributions,
            user_attrs={**best.user_attrs, keys.PARAMS_FULL: full, keys.RECIPE: recipe},
        )
    )
    number = len(study.trials) - 1
    meta, _, stderr = export(
        capsys, url, image_study.name, tmp_path / "model", "--trial", str(number)
    )
    check = meta["validation_check"]
    assert check["trial_value"] == 0.02 and check["retrained_value"] > 0.5
    assert check["within_noise"] is False and check["noise"]["method"] == "bootstrap"
    assert abs(check["difference"]) > check["threshold"] > 0
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert f"above trial {number}'s (0.0200)" in warnings[0]
    n_val = sum(meta["dataset"]["split_counts"]["val"].values())
    assert f"bootstrap standard error on the {n_val} validation images" in warnings[0]
    assert "not the model the search scored" in warnings[0]
    card = (tmp_path / "model" / CARD_FILE).read_text()
    assert 'id="validation-warning"' in card and "not the model the search scored" in card


def test_train_val_is_not_compared(image_study: ImageStudy, tmp_path: Path, capsys: Any) -> None:
    url = copy_of(image_study, tmp_path)
    meta, stdout, stderr = export(
        capsys, url, image_study.name, tmp_path / "model", "--train-on", "train+val"
    )
    check = meta["validation_check"]
    assert check["held_out"] is False and check["within_noise"] is None
    assert check["warning"] is None and check["noise"] is None
    assert "is not held out and is not compared" in stdout and "warning" not in stderr
    card = (tmp_path / "model" / CARD_FILE).read_text()
    assert "its validation score is not held" in card and "validation-warning" not in card


def test_export_rebuilds_the_model_from_the_trials_own_record(
    image_study: ImageStudy, tmp_path: Path, capsys: Any
) -> None:
    # The study's stored file now says 1 epoch (as after a later run); the trial
    # trained 5, and its own record says so.
    url = copy_of(image_study, tmp_path)
    study = optuna.load_study(study_name=image_study.name, storage=url)
    config = study.user_attrs[keys.STUDY_CONFIG]
    study.set_user_attr(
        keys.STUDY_CONFIG, {**config, "training": {**config["training"], "head_epochs": 1}}
    )
    best = study.best_trial
    recipe = best.user_attrs[keys.RECIPE]
    assert (
        recipe["input_shape"] == [SIZE, SIZE, 1]
        and recipe["params"] == best.user_attrs[keys.PARAMS_FULL]
    )
    assert recipe["sampler"] == {"name": "random", "seed": 3}
    assert {"dataset", "model", "training", "objective"} <= set(recipe)
    meta, _, _ = export(capsys, url, image_study.name, tmp_path / "model")
    assert meta["training"]["epochs_run"] == 5
    assert meta["validation_check"]["within_noise"]
    assert meta["recipe"] == {
        "source": "trial",
        "sampler": {"name": "random", "seed": 3},
        "input_shape": [SIZE, SIZE, 1],
    }


def test_trials_of_older_versions_use_the_studys_file(tmp_path: Path, capsys: Any) -> None:
    import shutil

    from tests.image_study import FIXTURES, OLD_NAME

    db = tmp_path / "old.db"
    shutil.copy(FIXTURES / "study-0.1.0.db", db)
    meta, stdout, _ = export(capsys, f"sqlite:///{db}", OLD_NAME, tmp_path / "model")
    assert meta["recipe"] == {"source": "study", "sampler": None, "input_shape": None}
    assert "recipe: the study's stored file" in stdout
    assert meta["validation_check"]["trial_value"] is not None


# --------------------------------------------------------------------------
# the noise estimate, without training


def test_noise_is_the_spread_of_trials_with_the_same_params() -> None:
    study = optuna.create_study(direction="maximize")
    same = {"learning_rate": 0.01, "batch_size": 16}
    for value, params in ((0.80, same), (0.84, same), (0.76, same), (0.20, {**same, "x": 1})):
        study.add_trial(
            optuna.trial.create_trial(value=value, user_attrs={keys.PARAMS_FULL: params})
        )
    first = study.trials[0]
    check = compare_validation(
        study, first, "macro_f1", {"macro_f1": 0.70}, [[5, 0], [0, 5]], held_out=True
    )
    assert check.noise is not None and check.noise.method == "same-params"
    assert check.noise.n == 3 and check.noise.sigma == pytest.approx(0.04)
    assert check.threshold == pytest.approx(2 * math.sqrt(2) * 0.04)
    assert check.within_noise is True  # 0.10 below, within 0.113
    lone = compare_validation(
        study, study.trials[3], "macro_f1", {"macro_f1": 0.70}, [[5, 0], [0, 5]], held_out=True
    )
    assert lone.noise is not None and lone.noise.method == "bootstrap" and lone.noise.n == 10


def test_bootstrap_standard_error_of_the_metric() -> None:
    from sklearn.metrics import f1_score

    confusion = [[30, 6, 4], [5, 20, 5], [1, 2, 7]]
    y = np.repeat([0, 0, 0, 1, 1, 1, 2, 2, 2], np.ravel(confusion))
    pred = np.concatenate([np.repeat([0, 1, 2], row) for row in confusion])
    # Resampling within each true class, by hand with scikit-learn.
    rng = np.random.default_rng(1)
    members = [np.flatnonzero(y == k) for k in range(3)]
    scores = []
    for _ in range(1000):
        idx = np.concatenate([rng.choice(m, len(m)) for m in members])
        scores.append(f1_score(y[idx], pred[idx], average="macro", labels=[0, 1, 2]))
    expected = float(np.std(scores, ddof=1))
    assert bootstrap_se("macro_f1", confusion) == pytest.approx(expected, rel=0.15)
    assert bootstrap_se("accuracy", [[10, 0], [0, 10]]) == 0.0  # nothing to vary


# --------------------------------------------------------------------------
# seeded augmentation


def test_training_with_augmentation_repeats_exactly() -> None:
    from hpo import data as data_mod
    from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
    from hpo.training import clear_session, train_and_evaluate

    config = validate_config(
        {
            "study": {"name": "t"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 30},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 3, "validate_every_epoch": True, "augment": True},
        }
    )
    dataset = data_mod.load_dataset(config.dataset)
    params = {**HYPERPARAMETER_DEFAULTS, "batch_size": 16}
    curves = []
    for _ in range(2):
        result = train_and_evaluate(config, dataset, params)
        curves.append((result.curve, result.evaluation.confusion_matrix))
        clear_session()
    assert len(curves[0][0]) == 3
    assert curves[0] == curves[1]  # every epoch's score, and the final predictions


def test_augmentation_is_a_function_of_the_batch_and_its_seed() -> None:
    import tensorflow as tf

    from hpo.training import make_dataset
    from hpo.training._pipeline import augment_batch

    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
    a = augment_batch(tf.constant(images), tf.constant(5, tf.int64)).numpy()
    b = augment_batch(tf.constant(images), tf.constant(5, tf.int64)).numpy()
    c = augment_batch(tf.constant(images), tf.constant(6, tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, images.astype(np.float32))
    # In a pipeline: new transforms every epoch, the same ones when rebuilt with the seed.
    labels = np.arange(8)

    def epochs(seed: int) -> list[np.ndarray]:
        ds = make_dataset(images, labels, 4, shuffle=True, seed=seed, augment=True)
        return [np.concatenate([x.numpy() for x, _ in ds]) for _ in range(2)]

    first, again = epochs(3), epochs(3)
    assert not np.array_equal(first[0], first[1])
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)
