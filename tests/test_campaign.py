from __future__ import annotations

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


@pytest.mark.slow
def test_compare_end_to_end_and_rebuild(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import optuna

    from hpo import keys
    from tests.helpers import hpo, write

    study = {
        "study": {"name": "cmp"},
        "dataset": {"source": "digits", "image_size": 10, "channels": 1, "max_per_class": 12},
        "model": {"backbone": "small_cnn", "weights": "none"},
        "training": {"head_epochs": 1},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}
        },
    }
    db = f"sqlite:///{tmp_path / 'c.db'}"
    path = write(tmp_path, study)
    out = tmp_path / "campaign.html"
    result = hpo(
        "compare",
        str(path),
        "--samplers",
        "tpe,random",
        "--repeats",
        "2",
        "--trials",
        "2",
        "--storage",
        db,
        "--out",
        str(out),
        "-q",
        "--workers",
        "2",
    )
    assert result.returncode == 0, result.stderr
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
        assert len(s.trials) == 2
        assert s.user_attrs[keys.STUDY_CAMPAIGN] == "cmp-compare"
        assert s.user_attrs[keys.STUDY_SAMPLER]["name"] in name
    # Running again resumes: nothing more to run, same totals.
    again = hpo(
        "compare",
        str(path),
        "--samplers",
        "tpe,random",
        "--repeats",
        "2",
        "--trials",
        "2",
        "--storage",
        db,
        "--out",
        str(out),
        "-q",
    )
    assert again.returncode == 0, again.stderr
    assert all(len(optuna.load_study(study_name=n, storage=db).trials) == 2 for n in names)
    rebuilt = hpo(
        "report",
        "--campaign",
        "cmp-compare",
        "--storage",
        db,
        "--out",
        str(tmp_path / "again.html"),
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    single = hpo("report", names[0], "--storage", db, "--out", str(tmp_path / "one.html"))
    assert single.returncode == 0 and (tmp_path / "one.html").exists()
    missing = hpo("report", "--campaign", "nope", "--storage", db)
    assert missing.returncode == 2 and "no campaign named 'nope'" in missing.stderr
