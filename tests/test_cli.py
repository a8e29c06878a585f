"""The ``hpo`` command end to end: real CLI processes, real training, real databases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from tests.helpers import hpo, write
from tests.image_study import EPOCHS, N_CLASSES, PER_CLASS, TRIALS, ImageStudy, class_name

TINY = {
    "study": {"name": "tiny"},
    "dataset": {"source": "digits", "image_size": 12, "channels": 1, "max_per_class": 20},
    "model": {"backbone": "small_cnn", "weights": "none"},
    "training": {"head_epochs": 2, "finetune_epochs": 0, "validate_every_epoch": True},
    "search_space": {
        "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
        "batch_size": {"type": "categorical", "choices": [16, 32]},
    },
    "sampler": {"name": "tpe", "seed": 1},
    "budget": {"trials": 2},
}
BENCH = {
    "study": {"name": "bench"},
    "objective": {"benchmark": "branin"},
    "sampler": {"name": "tpe", "seed": 0},
    "budget": {"trials": 3},
}
CHANCE = 1.0 / N_CLASSES


@pytest.mark.slow
def test_run_trains_scores_and_records_every_trial(image_study: ImageStudy) -> None:
    assert "best macro F1" in image_study.run.stdout
    study = optuna.load_study(study_name=image_study.name, storage=image_study.url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * TRIALS, [
        t.user_attrs.get(keys.FAIL_REASON) for t in study.trials
    ]
    for t in study.trials:
        assert t.value is not None
        # Seeded (tests/image_study.py): well above chance, so training really learned.
        assert 3 * CHANCE <= t.value <= 1.0, t.value
        assert t.value == t.user_attrs[keys.METRICS]["macro_f1"]
        assert len(t.user_attrs[keys.F1_PER_CLASS]) == N_CLASSES
        assert len(t.user_attrs[keys.CONFUSION]) == N_CLASSES
        assert len(t.user_attrs[keys.ROC_CURVES]) == N_CLASSES
        assert t.user_attrs[keys.EPOCHS] == EPOCHS
        assert t.user_attrs[keys.TRAIN_SECONDS] > 0
        assert t.user_attrs[keys.IMAGES_PER_SECOND] > 0
        assert t.user_attrs[keys.HOST] and t.user_attrs[keys.DEVICE] == "cpu"
        assert sorted(t.intermediate_values) == list(range(EPOCHS))
        assert set(t.user_attrs[keys.PARAMS_FULL]) >= {"learning_rate", "l1", "unfrozen_layers"}
    fp = study.user_attrs[keys.STUDY_FINGERPRINT]
    assert fp["class_counts"] == {class_name(k): PER_CLASS for k in range(N_CLASSES)}
    assert len(fp["sha256"]) == 64
    assert study.user_attrs[keys.STUDY_CONFIG]["study"]["name"] == image_study.name
    assert "optuna" in study.user_attrs[keys.STUDY_VERSIONS]
    assert keys.STUDY_OPTIMUM not in study.user_attrs  # only benchmarks know theirs


@pytest.mark.slow
def test_read_only_commands_show_the_stored_study(image_study: ImageStudy) -> None:
    url = image_study.url
    study = optuna.load_study(study_name=image_study.name, storage=url)
    listed = hpo("studies", "--storage", url, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert sorted(rows) == sorted([image_study.name, image_study.old_name])
    assert rows[image_study.name]["complete"] == TRIALS
    assert rows[image_study.name]["best_value"] == study.best_value
    status = hpo("status", image_study.name, "--storage", url)
    assert status.returncode == 0, status.stderr
    assert f"best macro F1 {study.best_value:.4f}" in status.stdout
    best = hpo("best", image_study.name, "--storage", url, "--json")
    assert best.returncode == 0, best.stderr
    info = json.loads(best.stdout)
    assert info["value"] == study.best_value  # the stored value, not a recomputed one
    assert info["number"] == study.best_trial.number
    assert [r["class"] for r in info["f1_per_class"]] == [class_name(k) for k in range(N_CLASSES)]


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
def test_run_and_resume_a_benchmark_study(
    storage: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'b.db'}"
        if storage == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    study_file = write(tmp_path, BENCH)
    first = hpo("run", str(study_file), "--storage", url, "-q")
    assert first.returncode == 0, first.stderr
    again = hpo("run", str(study_file), "--storage", url, "--trials", "2", "-q")
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="bench", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5  # 3, then 2 more
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.user_attrs[keys.STUDY_OPTIMUM] == pytest.approx(0.397887, abs=1e-6)
    assert f"best branin {study.best_value:.4f}" in again.stdout
    best = hpo("best", "bench", "--storage", url, "--json")
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["value"] == min(t.value for t in study.trials)


def test_run_uses_hpo_storage_without_storage_flag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    study_file = write(tmp_path, BENCH)
    env = {"HPO_STORAGE": url}
    result = hpo("run", str(study_file), "--trials", "1", "-q", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(optuna.load_study(study_name="bench", storage=url).trials) == 1
    assert not (tmp_path / "storage").exists()  # the default database was not used


def test_a_benchmark_run_never_imports_a_keras_backend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    study_file = write(tmp_path, {**BENCH, "objective": {"benchmark": "hartmann6", "seconds": 0.2}})
    code = (
        "import sys\n"
        "from hpo.cli import main\n"
        "try:\n"
        f"    main(['run', {str(study_file)!r}, '--storage', {url!r}, '--trials', '2', '-q'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="bench", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_read_only_commands_do_not_import_tensorflow(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    study = optuna.create_study(study_name="ro", storage=url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    code = (
        "import sys\n"
        "from hpo.cli import main\n"
        f"for args in (['studies', '--storage', {url!r}], ['status', 'ro', '--storage', {url!r}],"
        f" ['best', 'ro', '--storage', {url!r}]):\n"
        "    main(args)\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'torch', 'plotly') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_malformed_study_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("study: {name: x\ndataset: [")
    result = hpo("run", str(path))
    assert result.returncode == 2
    assert "malformed YAML" in result.stderr and str(path) in result.stderr


def test_changed_search_space_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    from hpo.config import validate_config
    from hpo.storage import open_storage
    from hpo.studies import make_study

    make_study(validate_config(TINY), open_storage(db))
    changed = json.loads(json.dumps(TINY))
    changed["search_space"]["dropout"]["high"] = 0.5
    result = hpo("run", str(write(tmp_path, changed)), "--storage", db)
    assert result.returncode == 2
    assert "search_space.dropout.high 0.3 -> 0.5" in result.stderr, result.stderr
    assert len(optuna.load_study(study_name="tiny", storage=db).trials) == 0


def test_resume_on_changed_images_is_refused(tmp_path: Path) -> None:
    """The study recorded one set of images; a run on other pixels stops before training."""
    import numpy as np

    from hpo.config import validate_config
    from hpo.data import load_dataset
    from hpo.storage import open_storage
    from hpo.studies import make_study, record_fingerprint

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(40, 8, 8), dtype=np.uint8)
    labels = np.arange(40) % 2
    npz = tmp_path / "scans.npz"
    np.savez(npz, train_images=images, train_labels=labels)
    data = {**TINY, "dataset": {"source": "npz", "path": str(npz), "image_size": 8, "channels": 1}}
    config = validate_config(data)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    study = make_study(config, open_storage(db))
    record_fingerprint(study, load_dataset(config.dataset).fingerprint())  # as a first run does

    images[0, 0, 0] ^= 1  # one pixel of one image
    np.savez(npz, train_images=images, train_labels=labels)
    result = hpo("run", str(write(tmp_path, data)), "--storage", db)
    assert result.returncode == 2, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "study 'tiny' was run on different data" in error and "Traceback" not in result.stderr
    assert optuna.load_study(study_name="tiny", storage=db).trials == []
