"""Storage passwords never reach output: errors, status, reports, the stored study file."""

from __future__ import annotations

from pathlib import Path

import optuna

from hpo import keys
from hpo.config import validate_config
from hpo.reports import write_study_report
from hpo.storage import open_storage
from hpo.studies import make_study
from tests.helpers import hpo, write

SECRET = "hunter2-topsecret"
BAD = f"postgresql://hpo:{SECRET}@127.0.0.1:1/hpo"
STUDY = {
    "study": {"name": "s"},
    "dataset": {"source": "digits", "image_size": 10, "channels": 1},
    "model": {"backbone": "small_cnn", "weights": "none"},
    "storage": BAD,
}


def test_errors_from_every_command_hide_the_password(tmp_path: Path) -> None:
    study_file = write(tmp_path, STUDY)
    commands = [
        ["run", str(study_file)],
        ["run", str(study_file), "--storage", BAD],
        ["worker", str(study_file)],
        ["launch", str(study_file), "--gpus", "none"],
        ["studies"],  # the URL only from $HPO_STORAGE
        ["status", "s", "--storage", BAD],
        ["best", "s", "--storage", BAD],
        ["report", "s", "--storage", BAD],
        ["compare", str(study_file), "--samplers", "tpe", "--repeats", "1"],
    ]
    for args in commands:
        result = hpo(*args, env={"HPO_STORAGE": BAD} if args[0] == "studies" else None)
        assert result.returncode == 2, (args, result.stderr)
        assert "cannot reach" in result.stderr, (args, result.stderr)
        assert SECRET not in result.stdout + result.stderr, args
        assert "***" in result.stderr


def test_stored_study_file_and_report_hold_no_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    config = validate_config({**STUDY, "storage": f"postgresql://u:{SECRET}@db/hpo"})
    study = make_study(config, open_storage(url))
    assert SECRET not in str(study.user_attrs[keys.STUDY_CONFIG])
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    html = write_study_report(url, "s", tmp_path / "r.html").read_text()
    assert SECRET not in html
    for args in (["status", "s"], ["best", "s"], ["studies"]):
        out = hpo(*args, "--storage", url)
        assert out.returncode == 0 and SECRET not in out.stdout + out.stderr
    assert SECRET not in str(optuna.load_study(study_name="s", storage=url).user_attrs)
