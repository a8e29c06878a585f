"""The ``hpo`` command end to end: real CLI processes, real training, real databases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from hpo import keys
from tests.helpers import hpo, write

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


@pytest.mark.slow
def test_run_end_to_end_and_resume(tmp_path: Path, storage_url: str) -> None:
    study_file = write(tmp_path, TINY)
    result = hpo("run", str(study_file), "--storage", storage_url, "--trials", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "best macro F1" in result.stdout

    study = optuna.load_study(study_name="tiny", storage=storage_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 3
    assert complete, [t.user_attrs.get(keys.FAIL_REASON) for t in study.trials]
    for t in complete:
        assert 0.0 <= t.value <= 1.0
        assert t.value == pytest.approx(t.user_attrs[keys.METRICS]["macro_f1"])
        assert len(t.user_attrs[keys.F1_PER_CLASS]) == 10
        assert len(t.user_attrs[keys.CONFUSION]) == 10
        assert len(t.user_attrs[keys.ROC_CURVES]) == 10
        assert t.user_attrs[keys.EPOCHS] == 2
        assert t.user_attrs[keys.TRAIN_SECONDS] > 0
        assert t.user_attrs[keys.IMAGES_PER_SECOND] > 0
        assert t.user_attrs[keys.HOST] and t.user_attrs[keys.DEVICE] == "cpu"
        assert sorted(t.intermediate_values) == [0, 1]
        assert set(t.user_attrs[keys.PARAMS_FULL]) >= {"learning_rate", "l1", "unfrozen_layers"}
    fp = study.user_attrs[keys.STUDY_FINGERPRINT]
    assert fp["class_counts"] == {str(i): 20 for i in range(10)}
    assert len(fp["sha256"]) == 64
    assert study.user_attrs[keys.STUDY_CONFIG]["study"]["name"] == "tiny"
    assert "optuna" in study.user_attrs[keys.STUDY_VERSIONS]

    # Running again resumes the same study and adds trials.
    again = hpo("run", str(study_file), "--storage", storage_url, "--trials", "1", "-q")
    assert again.returncode == 0, again.stderr
    assert len(optuna.load_study(study_name="tiny", storage=storage_url).trials) == 4

    # Read-only commands.
    listed = hpo("studies", "--storage", storage_url, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["tiny"] and rows[0]["complete"] >= 1
    status = hpo("status", "tiny", "--storage", storage_url)
    assert status.returncode == 0 and "best macro F1" in status.stdout
    best = hpo("best", "tiny", "--storage", storage_url, "--json")
    info = json.loads(best.stdout)
    assert info["value"] == pytest.approx(study.best_value) or info["value"] >= study.best_value
    assert [r["class"] for r in info["f1_per_class"]] == [str(i) for i in range(10)]


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
