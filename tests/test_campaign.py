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
