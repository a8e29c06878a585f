"""Sampler-comparison campaigns: plans, member study files, ``hpo compare`` end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hpo.campaign import member_config, parse_samplers, plan
from hpo.config import validate_config
from hpo.errors import ConfigError

BASE = {
    "study": {"name": "camp"},
    "dataset": {"source": "digits", "image_size": 12, "channels": 1},
    "model": {"backbone": "small_cnn", "weights": "none"},
    "sampler": {"name": "gpyopt", "seed": 3, "options": {"acquisition": "EI"}},
}


def test_parse_samplers() -> None:
    assert parse_samplers("tpe, gp,random") == ["tpe", "gp", "random"]
    with pytest.raises(ConfigError, match="unknown sampler 'cmaes'"):
        parse_samplers("tpe,cmaes")
    with pytest.raises(ConfigError, match="once"):
        parse_samplers("tpe,tpe")
    with pytest.raises(ConfigError):
        parse_samplers(" , ")


def test_plan_names_seeds_and_order() -> None:
    config = validate_config(BASE)
    members = plan(config, "my campaign", ["tpe", "gpyopt"], repeats=2, base_seed=10)
    assert [(m.sampler, m.repeat, m.seed) for m in members] == [
        ("tpe", 0, 10),
        ("gpyopt", 0, 10),
        ("tpe", 1, 11),
        ("gpyopt", 1, 11),
    ]
    assert members[0].study_name == "camp.my_campaign.tpe.r0"
    assert len({m.study_name for m in members}) == 4
    with pytest.raises(ConfigError):
        plan(config, "c", ["tpe"], repeats=0, base_seed=0)


def test_member_config_keeps_options_only_for_its_sampler() -> None:
    config = validate_config(BASE)
    members = plan(config, "c", ["tpe", "gpyopt"], repeats=1, base_seed=5)
    tpe = member_config(config, members[0], trials=7)
    gpy = member_config(config, members[1], trials=7)
    assert tpe.sampler.name == "tpe" and tpe.sampler.options == {} and tpe.sampler.seed == 5
    assert gpy.sampler.options == {"acquisition": "EI"}
    assert gpy.budget.trials == 7 and gpy.study.name.endswith(".gpyopt.r0")
    assert gpy.search_space == config.search_space


def test_member_config_of_a_benchmark_study_keeps_the_benchmark() -> None:
    config = validate_config({"study": {"name": "b"}, "objective": {"benchmark": "branin"}})
    (member,) = plan(config, "c", ["random"], repeats=1, base_seed=2)
    cfg = member_config(config, member, trials=4)
    assert cfg.objective.benchmark == "branin" and cfg.dataset is None
    assert cfg.sampler.name == "random" and cfg.budget.trials == 4


def test_compare_end_to_end_and_rebuild(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    from hpo import keys
    from tests.helpers import hpo, run_cli, write

    study = {"study": {"name": "cmp"}, "objective": {"benchmark": "branin", "seconds": 0.2}}
    db = f"sqlite:///{tmp_path / 'c.db'}"
    path = write(tmp_path, study)
    out = tmp_path / "campaign.html"
    common = ["--samplers", "tpe,random", "--trials", "2", "--storage", db, "--out", str(out), "-q"]
    # First one repeat, each study run by two worker processes (the launcher's way)...
    result = hpo("compare", str(path), *common, "--repeats", "1", "--workers", "2")
    assert result.returncode == 0, result.stderr
    first = {
        s.study_name: [
            (t.number, t.value)
            for t in optuna.load_study(study_name=s.study_name, storage=db).trials
        ]
        for s in optuna.get_all_study_summaries(db)
    }
    assert sorted(first) == ["cmp.cmp-compare.random.r0", "cmp.cmp-compare.tpe.r0"]
    # ...then two: the campaign resumes, adding the second repeat in this process.
    again = hpo("compare", str(path), *common, "--repeats", "2")
    assert again.returncode == 0, again.stderr
    assert out.exists() and "Campaign cmp-compare" in out.read_text()
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(db))
    assert names == [
        "cmp.cmp-compare.random.r0",
        "cmp.cmp-compare.random.r1",
        "cmp.cmp-compare.tpe.r0",
        "cmp.cmp-compare.tpe.r1",
    ]
    for name in names:
        s = optuna.load_study(study_name=name, storage=db)
        assert [t.state for t in s.trials] == [optuna.trial.TrialState.COMPLETE] * 2
        assert s.user_attrs[keys.STUDY_CAMPAIGN] == "cmp-compare"
        assert s.user_attrs[keys.STUDY_SAMPLER]["name"] in name
        assert s.direction == optuna.study.StudyDirection.MINIMIZE
        assert s.user_attrs[keys.STUDY_OPTIMUM] == pytest.approx(0.397887, abs=1e-6)
        if name in first:  # resumed with nothing left to run: unchanged
            assert [(t.number, t.value) for t in s.trials] == first[name]
    code, _, err = run_cli(
        capsys,
        "report",
        "--campaign",
        "cmp-compare",
        "--storage",
        db,
        "--out",
        str(tmp_path / "again.html"),
    )
    assert code == 0, err
    code, _, err = run_cli(
        capsys, "report", names[0], "--storage", db, "--out", str(tmp_path / "one.html")
    )
    assert code == 0 and (tmp_path / "one.html").exists(), err
    code, _, err = run_cli(capsys, "report", "--campaign", "nope", "--storage", db)
    assert code == 2 and "no campaign named 'nope'" in err


def test_sigterm_stops_the_whole_campaign(tmp_path: Path) -> None:
    """A SIGTERM inside the first study ends the command; no later study is started."""
    import optuna

    from tests.helpers import write
    from tests.processes import poll_study

    study = {"study": {"name": "stop"}, "objective": {"benchmark": "branin", "seconds": 1.0}}
    db = f"sqlite:///{tmp_path / 's.db'}"
    path = write(tmp_path, study)
    args = ["compare", str(path), "--samplers", "random,tpe", "--repeats", "1", "--trials", "20"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("HPO_STORAGE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo", *args, "--storage", db, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        poll_study(
            db,
            "stop.stop-compare.random.r0",
            lambda ts: True if any(t.intermediate_values for t in ts) else None,
            "the first study's first trial to report",
            timeout=120,
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "campaign stop-compare interrupted (SIGTERM)" in out + err
    names = [s.study_name for s in optuna.get_all_study_summaries(db)]
    assert names == ["stop.stop-compare.random.r0"], "a later study was started"
    trials = optuna.load_study(study_name=names[0], storage=db).trials
    assert len([t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]) < 20
