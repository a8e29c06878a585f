from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo.config import StudyConfig, load_config, validate_config
from hpo.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
QUICK = yaml.safe_load((REPO / "search_spaces" / "quickstart.yaml").read_text())


SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_study_files_load(path: Path) -> None:
    config = load_config(path)
    assert config.study.name
    assert config.search_space


def test_quickstart_values() -> None:
    config = load_config(REPO / "search_spaces" / "quickstart.yaml")
    assert config.model.backbone == "small_cnn" and config.model.resolved_weights is None
    assert config.budget.trials == 10 and config.sampler.name == "tpe"


def mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(QUICK)
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    if value is DELETE:
        node.pop(leaf)
    else:
        node[leaf] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("bogus", 1, "bogus: unknown key"),
        ("dataset.colour", "red", "dataset.colour: unknown key"),
        ("dataset", DELETE, "dataset: required field is missing"),
        ("study.name", "", "study.name"),
        ("dataset.image_size", "big", "dataset.image_size"),
        ("dataset.image_size", 4, "between 8 and 1024"),
        ("dataset.source", "dicom", "'digits', 'directory' or 'npz'"),
        ("dataset.path", "x", "takes no 'path'"),
        ("model.backbone", "alexnet", "unknown backbone 'alexnet'; allowed: small_cnn"),
        ("sampler.name", "cmaes", "unknown sampler 'cmaes'; allowed: tpe, gp, gpyopt, random"),
        ("pruner.name", "wilcoxon", "unknown pruner 'wilcoxon'"),
        ("budget.trials", 0, "budget.trials"),
        ("budget.trials", -5, "budget.trials"),
        ("budget.trials", "ten", "budget.trials"),
        (
            "search_space.learning_rate",
            {"type": "float", "low": 0.1, "high": 0.01},
            "'low' (0.1) must be less than 'high' (0.01)",
        ),
        (
            "search_space.learning_rate",
            {"type": "float", "low": 0.1, "high": 0.1},
            "must be less than",
        ),
        (
            "search_space.learning_rate",
            {"type": "float", "low": 0, "high": 0.1, "log": True},
            "log scale needs 'low' > 0",
        ),
        (
            "search_space.batch_size",
            {"type": "categorical", "choices": []},
            "non-empty list of 'choices'",
        ),
        ("search_space.batch_size", {"type": "categorical", "choices": [16, 16]}, "unique"),
        ("search_space.dense_units", {"type": "int", "low": 1.5, "high": 8}, "must be an integer"),
        (
            "search_space.dense_units",
            {"type": "int", "low": 1, "high": 8, "step": 20},
            "larger than the range",
        ),
        (
            "search_space.dense_units",
            {"type": "int", "low": 1, "high": 8, "step": 2, "log": True},
            "cannot be combined",
        ),
        ("search_space.dense_units", {"type": "integer", "low": 1, "high": 8}, "search_space"),
        ("search_space.momentum", 0.9, "unknown hyperparameter 'momentum'"),
        ("search_space.dropout", 2.0, "search_space.dropout: 2.0 is out of range"),
        ("search_space.optimizer", "lion", "allowed: adam, sgd, rmsprop, adamw"),
        ("model.weights", "imagenet", "small_cnn has no ImageNet weights"),
    ],
)
def test_bad_study_files(path: str, value: Any, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(mutate(path, value), source="study.yaml")
    message = str(info.value)
    assert message.startswith("study.yaml: ")
    assert needle in message
    assert "\n" not in message


def test_directory_source_needs_a_path() -> None:
    data = mutate("dataset.source", "directory")
    with pytest.raises(ConfigError, match="needs 'path'"):
        validate_config(data)


def test_backbone_input_checks() -> None:
    data = mutate("model.backbone", "resnet50")
    data["model"]["weights"] = "none"
    with pytest.raises(ConfigError, match="too small for resnet50"):
        validate_config(data)
    data["dataset"]["image_size"] = 32
    data["model"]["weights"] = "imagenet"
    with pytest.raises(ConfigError, match="needs 3 channels"):
        validate_config(data)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="study file not found"):
        load_config(tmp_path / "none.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="study file is empty"):
        load_config(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("study:\n  name: [x\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+, column \d+"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listy)
    evil = tmp_path / "evil.yaml"
    evil.write_text("study: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(evil)


def test_overrides() -> None:
    config = validate_config(QUICK)
    changed = config.with_overrides(
        trials=3, sampler="gpyopt", seed=9, study_name="other", storage="sqlite:///x.db"
    )
    assert changed.budget.trials == 3 and changed.sampler.name == "gpyopt"
    assert changed.sampler.seed == 9 and changed.study.name == "other"
    assert changed.storage == "sqlite:///x.db"
    with pytest.raises(ConfigError, match="unknown sampler"):
        config.with_overrides(sampler="nope")
    with pytest.raises(ConfigError, match=r"budget\.trials"):
        config.with_overrides(trials=0)


def test_round_trip_through_dict() -> None:
    config = validate_config(QUICK)
    assert validate_config(config.to_dict()) == config


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
yamlish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
PATHS = [
    "study",
    "study.name",
    "dataset",
    "dataset.source",
    "dataset.image_size",
    "dataset.channels",
    "dataset.val_fraction",
    "model",
    "model.backbone",
    "model.weights",
    "training",
    "training.head_epochs",
    "search_space",
    "search_space.learning_rate",
    "search_space.learning_rate.low",
    "search_space.learning_rate.log",
    "search_space.batch_size",
    "search_space.batch_size.choices",
    "sampler",
    "sampler.name",
    "pruner.options",
    "budget",
    "budget.trials",
    "storage",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yamlish)
def test_fuzz_random_structures(data: Any) -> None:
    with contextlib.suppress(ConfigError):
        assert isinstance(validate_config(data), StudyConfig)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.one_of(yamlish, st.just(DELETE))),
        min_size=1,
        max_size=3,
    )
)
def test_fuzz_mutated_quickstart(edits: list[tuple[str, Any]]) -> None:
    data: Any = copy.deepcopy(QUICK)
    for path, value in edits:
        node = data
        *parents, leaf = path.split(".")
        ok = True
        for p in parents:
            if not isinstance(node, dict) or not isinstance(node.get(p), dict):
                ok = False
                break
            node = node[p]
        if not ok or not isinstance(node, dict):
            continue
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    try:
        assert isinstance(validate_config(data), StudyConfig)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_raw_yaml_text(text: str) -> None:
    path = Path("/tmp") / "hpo_fuzz_study.yaml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(ConfigError):
        load_config(path)
