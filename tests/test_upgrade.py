"""A database written by an earlier hpo release still opens and continues."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest

from hpo import keys
from tests.helpers import hpo

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.slow
def test_continue_a_study_written_by_release_0_1_0(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURES / "study-0.1.0.db", db)
    url = f"sqlite:///{db}"
    before = optuna.load_study(study_name="fixture-0.1.0", storage=url)
    old = [(t.number, t.state, t.value, t.params) for t in before.trials]
    assert len(old) == 3
    assert before.user_attrs[keys.STUDY_VERSIONS]["hpo"] == "0.1.0"

    result = hpo("run", str(FIXTURES / "study-0.1.0.yaml"), "--storage", url, "--trials", "1", "-q")
    assert result.returncode == 0, result.stderr

    after = optuna.load_study(study_name="fixture-0.1.0", storage=url)
    assert len(after.trials) == 4
    assert [(t.number, t.state, t.value, t.params) for t in after.trials[:3]] == old
    best = hpo("best", "fixture-0.1.0", "--storage", url)
    assert best.returncode == 0, best.stderr
