"""The study file: loading, validation messages and overrides."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo.config import (
    BACKBONES,
    HYPERPARAMETER_DEFAULTS,
    PRUNERS,
    SAMPLERS,
    StudyConfig,
    load_config,
    validate_config,
)
from hpo.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
QUICK: dict[str, Any] = yaml.safe_load(QUICKSTART.read_text())
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))

DELETE = object()


def mutate(path: str, value: Any) -> dict[str, Any]:
    """The quickstart dict with one dotted path set (or deleted with DELETE)."""
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


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(data, source="study.yaml")
    message = str(info.value)
    assert message.startswith("study.yaml: ")
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------
# files that load


def test_shipped_files_are_there() -> None:
    names = {p.name for p in SHIPPED}
    assert "quickstart.yaml" in names and len(names) >= 2


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_study_files_load(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, StudyConfig)
    assert config.study.name
    assert config.search_space or config.objective.benchmark  # a benchmark has its own space
    # A loaded file survives the JSON round trip the study stores.
    assert validate_config(config.to_dict()) == config


def test_quickstart_values() -> None:
    config = load_config(QUICKSTART)
    assert config.dataset.source == "digits" and config.dataset.size == (16, 16)
    assert config.dataset.channels == 1
    assert config.model.backbone == "small_cnn" and config.model.resolved_weights is None
    assert config.training.head_epochs == 6 and config.training.finetune_epochs == 0
    assert config.budget.trials == 10
    assert config.sampler.name == "tpe" and config.sampler.seed == 0
    assert config.pruner.name == "median"
    assert set(config.search_space) == {
        "learning_rate",
        "dropout",
        "dense_units",
        "l2",
        "batch_size",
    }


def test_defaults_fill_optional_sections() -> None:
    config = validate_config(
        {
            "study": {"name": "minimal"},
            "dataset": {"source": "digits"},
            "model": {"backbone": "small_cnn", "weights": "none"},
        }
    )
    assert config.search_space == {}
    assert config.sampler.name == "tpe" and config.pruner.name == "none"
    assert config.objective.metric == "macro_f1"
    assert config.budget.trials == 20 and config.storage is None
    assert config.dataset.size == (32, 32) and config.dataset.channels == 3


def test_weights_resolution() -> None:
    base = {"study": {"name": "w"}, "dataset": {"source": "digits", "image_size": 32}}
    pretrained = validate_config({**base, "model": {"backbone": "resnet50"}})
    assert pretrained.model.resolved_weights == "imagenet"
    for spelled in ("none", "None", "null", ""):
        cfg = validate_config({**base, "model": {"backbone": "resnet50", "weights": spelled}})
        assert cfg.model.resolved_weights is None
    local = validate_config({**base, "model": {"backbone": "vgg16", "weights": "/w.weights.h5"}})
    assert local.model.resolved_weights == "/w.weights.h5"


# --------------------------------------------------------------------------
# files that don't: each message names the field and what is allowed


def test_malformed_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("study:\n  name: x\ndataset:\n  source: digits\n   image_size: 16\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: malformed YAML at line 5, column 14: ")
    assert "mapping values are not allowed" in message


def test_unclosed_bracket_is_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("study:\n  name: [x\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+, column \d+"):
        load_config(path)


def test_python_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("study: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"empty\.yaml: study file is empty"):
        load_config(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"none\.yaml: study file not found"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"study:\n  name: caf\xe9\n")
    with pytest.raises(ConfigError, match="cannot read study file"):
        load_config(path)


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(path)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(mutate("model.backbone", "alexnet")))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: model.backbone: unknown backbone 'alexnet'")


ALL_BACKBONES = ", ".join(BACKBONES)
ALL_HYPERPARAMETERS = ", ".join(HYPERPARAMETER_DEFAULTS)

BAD_FIELDS = [
    # (dotted path, value, expected "path: message" fragment, what is allowed)
    ("bogus", 1, "bogus: unknown key", None),
    ("dataset.colour", "red", "dataset.colour: unknown key", None),
    ("training.data.threads", 4, "training.data.threads: unknown key", None),
    ("search_space.learning_rate.scale", "log", "search_space.learning_rate", "unknown key"),
    ("dataset.image_size", "big", "dataset.image_size: ", "valid integer, got 'big'"),
    ("dataset.channels", 2, "dataset.channels: ", "1 or 3, got 2"),
    ("training.augment", "yes", "training.augment: ", "valid boolean, got 'yes'"),
    ("budget.trials", "ten", "budget.trials: ", "valid integer, got 'ten'"),
    ("dataset.source", "dicom", "dataset.source: ", "'digits', 'directory' or 'npz'"),
    ("dataset", "digits", "dataset: ", "valid dictionary"),
    ("search_space", [1, 2], "search_space: ", "valid dictionary"),
    ("dataset", DELETE, "dataset: required field is missing", None),
    ("model", DELETE, "model: required field is missing", None),
    ("study", DELETE, "study: required field is missing", None),
    ("study.name", DELETE, "study.name: required field is missing", None),
    ("study.name", "", "study.name: ", "1 to 128 printable characters"),
    ("model.backbone", "alexnet", "model.backbone: unknown backbone 'alexnet'", ALL_BACKBONES),
    ("sampler.name", "cmaes", "sampler.name: unknown sampler 'cmaes'", ", ".join(SAMPLERS)),
    ("pruner.name", "wilcoxon", "pruner.name: unknown pruner 'wilcoxon'", ", ".join(PRUNERS)),
    ("objective.metric", "auc", "objective.metric: ", "'macro_f1'"),
    (
        "search_space.learning_rate",
        {"type": "float", "low": 0.1, "high": 0.01},
        "search_space.learning_rate: ",
        "'low' (0.1) must be less than 'high' (0.01)",
    ),
    (
        "search_space.learning_rate",
        {"type": "float", "low": 0.1, "high": 0.1},
        "search_space.learning_rate: ",
        "'low' (0.1) must be less than 'high' (0.1)",
    ),
    (
        "search_space.dense_units",
        {"type": "int", "low": 64, "high": 64},
        "search_space.dense_units: ",
        "must be less than",
    ),
    (
        "search_space.learning_rate",
        {"type": "float", "low": 0, "high": 0.1, "log": True},
        "search_space.learning_rate: ",
        "log scale needs 'low' > 0, got 0",
    ),
    (
        "search_space.l2",
        {"type": "float", "low": -1.0, "high": 0.1, "log": True},
        "search_space.l2: ",
        "log scale needs 'low' > 0, got -1.0",
    ),
    (
        "search_space.batch_size",
        {"type": "categorical", "choices": []},
        "search_space.batch_size: ",
        "non-empty list of 'choices'",
    ),
    (
        "search_space.batch_size",
        {"type": "categorical"},
        "search_space.batch_size: ",
        "non-empty list of 'choices'",
    ),
    (
        "search_space.batch_size",
        {"type": "categorical", "choices": [16, 32, 16]},
        "search_space.batch_size: ",
        "'choices' must be unique",
    ),
    (
        "search_space.batch_size",
        {"type": "categorical", "choices": [16, 32], "low": 1},
        "search_space.batch_size: ",
        "categorical takes only 'choices'",
    ),
    (
        "search_space.dense_units",
        {"type": "int", "low": 1.5, "high": 8},
        "search_space.dense_units: ",
        "int 'low' must be an integer, got 1.5",
    ),
    (
        "search_space.dense_units",
        {"type": "int", "low": 1, "high": 8.0},
        "search_space.dense_units: ",
        "int 'high' must be an integer, got 8.0",
    ),
    (
        "search_space.dense_units",
        {"type": "int", "low": 1, "high": 8, "step": 20},
        "search_space.dense_units: ",
        "'step' (20) is larger than the range",
    ),
    (
        "search_space.dropout",
        {"type": "float", "low": 0.0, "high": 0.5, "step": 0.0},
        "search_space.dropout: ",
        "'step' must be positive",
    ),
    (
        "search_space.dense_units",
        {"type": "int", "low": 1, "high": 8, "step": 2, "log": True},
        "search_space.dense_units: ",
        "'step' and 'log: true' cannot be combined",
    ),
    (
        "search_space.learning_rate",
        {"type": "float", "low": 0.1},
        "search_space.learning_rate: ",
        "float needs both 'low' and 'high'",
    ),
    (
        "search_space.dense_units",
        {"type": "integer", "low": 1, "high": 8},
        "search_space.dense_units.type: ",
        "'float', 'int' or 'categorical', got 'integer'",
    ),
    (
        "search_space.dense_units",
        {"type": "float", "low": 16.0, "high": 64.0},
        "search_space.dense_units: ",
        "must be of type int",
    ),
    ("search_space.momentum", 0.9, "search_space: unknown hyperparameter 'momentum'", None),
    (
        "search_space.dropout",
        2.0,
        "search_space.dropout: 2.0 is out of range",
        "must be between 0 and 0.99",
    ),
    (
        "search_space.dropout",
        {"type": "float", "low": 0.0, "high": 2.0},
        "search_space.dropout: 2.0 is out of range",
        "must be between 0 and 0.99",
    ),
    (
        "search_space.learning_rate",
        0.0,
        "search_space.learning_rate: 0.0 is out of range",
        "a positive number up to 10",
    ),
    (
        "search_space.batch_size",
        {"type": "categorical", "choices": [16, 0]},
        "search_space.batch_size: 0 is out of range",
        "an integer from 1 to 65536",
    ),
    (
        "search_space.batch_size",
        {"type": "categorical", "choices": [16, True]},
        "search_space.batch_size: True is not a number",
        None,
    ),
    (
        "search_space.dense_units",
        64.5,
        "search_space.dense_units: 64.5 must be",
        "an integer from 1 to 65536",
    ),
    (
        "search_space.optimizer",
        "lion",
        "search_space.optimizer: 'lion' is not allowed",
        "allowed: adam, sgd, rmsprop, adamw",
    ),
    ("budget.trials", 0, "budget.trials: ", "greater than or equal to 1"),
    ("budget.trials", -5, "budget.trials: ", "greater than or equal to 1"),
    ("budget.timeout", 0, "budget.timeout: ", "greater than 0"),
    ("training.head_epochs", 0, "training.head_epochs: ", "greater than or equal to 1"),
    ("dataset.val_fraction", 0.6, "dataset.val_fraction: ", "less than 0.5"),
    ("dataset.max_per_class", 1, "dataset.max_per_class: ", "greater than or equal to 2"),
    ("dataset.path", "/data/mri", "dataset: ", "source 'digits' takes no 'path'"),
    ("dataset.image_size", 4, "dataset.image_size: ", "between 8 and 1024 pixels"),
    ("dataset.image_size", [16, 4], "dataset.image_size: ", "between 8 and 1024 pixels"),
    ("dataset.image_size", 4096, "dataset.image_size: ", "between 8 and 1024 pixels"),
    ("model.weights", "imagenet", "model: ", "small_cnn has no ImageNet weights"),
    ("model.pooling", "sum", "model.pooling: ", "'avg' or 'max'"),
    ("training.seed", -1, "training.seed: ", "greater than or equal to 0"),
    ("training.seed", 2**32, "training.seed: ", "less than 4294967296"),
    ("sampler.seed", -1, "sampler.seed: ", "greater than or equal to 0"),
    ("dataset.split_seed", -1, "dataset.split_seed: ", "greater than or equal to 0"),
    ("dataset.split_seed", 2**32 - 1, "dataset.split_seed: ", "less than"),
]


@pytest.mark.parametrize(
    ("path", "value", "where", "allowed"),
    BAD_FIELDS,
    ids=[f"{p}={v!r}"[:60] for p, v, _, _ in BAD_FIELDS],
)
def test_bad_field(path: str, value: Any, where: str, allowed: str | None) -> None:
    message = error_of(mutate(path, value))
    assert f"study.yaml: {where}" in message
    if allowed is not None:
        assert allowed in message


def test_unknown_hyperparameter_lists_the_known_ones() -> None:
    message = error_of(mutate("search_space.momentum", 0.9))
    assert f"allowed: {ALL_HYPERPARAMETERS}" in message


def test_directory_and_npz_sources_need_a_path() -> None:
    for source in ("directory", "npz"):
        data = mutate("dataset", {"source": source})
        assert f"dataset: source '{source}' needs 'path'" in error_of(data)


def test_groups_only_for_directory_sources() -> None:
    data = mutate("dataset.groups", "groups.csv")
    assert "'groups' applies only to source 'directory'" in error_of(data)


@pytest.mark.parametrize("backbone", [b for b in BACKBONES if b != "small_cnn"])
def test_image_too_small_for_a_pretrained_backbone(backbone: str) -> None:
    data = mutate("model", {"backbone": backbone, "weights": "none"})
    data["dataset"]["image_size"] = 16
    message = error_of(data)
    assert f"too small for {backbone}; it needs at least 32x32" in message
    data["dataset"]["image_size"] = 32
    assert validate_config(data).model.backbone == backbone


def test_pretrained_weights_need_three_channels() -> None:
    data = mutate("model", {"backbone": "mobilenet_v2"})
    data["dataset"].update(image_size=32, channels=1)
    assert "dataset.channels: mobilenet_v2 with pretrained weights needs 3 channels" in (
        error_of(data)
    )
    data["model"]["weights"] = "none"  # random initialisation takes any channel count
    assert validate_config(data).dataset.channels == 1


def test_feature_cache_on_with_augment() -> None:
    data = mutate("training.augment", True)
    data["training"]["feature_cache"] = "on"
    assert "cannot be combined with augment" in error_of(data)


@pytest.mark.parametrize(
    "model",
    [{"backbone": "small_cnn", "weights": "none"}, {"backbone": "small_cnn"}],
    ids=["weights-none", "small-cnn-default"],
)
def test_feature_cache_on_without_pretrained_weights(tmp_path: Path, model: dict[str, Any]) -> None:
    """Refused when the file is read, before any study exists, in one line."""
    path = tmp_path / "nocache.yaml"
    data = mutate("training.feature_cache", "on")
    data["model"] = model
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: training.feature_cache: on needs pretrained weights")
    assert "\n" not in message


def test_feature_cache_auto_without_weights_is_fine() -> None:
    assert (
        validate_config(mutate("training.feature_cache", "auto")).training.feature_cache == "auto"
    )


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (math.nan, "nan is out of range"),
        (math.inf, "inf is out of range"),
        ({"type": "categorical", "choices": [0.1, math.nan]}, "nan is out of range"),
        ({"type": "float", "low": 0.0, "high": math.nan}, "must be finite numbers"),
        ({"type": "float", "low": 0.0, "high": 0.5, "step": math.nan}, "'step' must be positive"),
    ],
)
def test_not_a_number_is_refused(entry: Any, fragment: str) -> None:
    message = error_of(mutate("search_space.dropout", entry))
    assert "search_space.dropout: " in message and fragment in message


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("dense_units", 10**400),
        ("dense_units", {"type": "int", "low": 1, "high": 10**400}),
        ("learning_rate", {"type": "float", "low": 1, "high": 10**400}),
        ("batch_size", {"type": "categorical", "choices": [16, 10**400]}),
    ],
)
def test_integers_too_big_for_a_float(name: str, entry: Any) -> None:
    assert f"search_space.{name}: " in error_of(mutate(f"search_space.{name}", entry))


def test_integer_valued_float_is_accepted_for_integer_hyperparameters() -> None:
    config = validate_config(mutate("search_space.dense_units", 64.0))
    assert config.search_space["dense_units"] == 64.0


# --------------------------------------------------------------------------
# command-line overrides


def test_overrides() -> None:
    config = validate_config(QUICK)
    changed = config.with_overrides(
        trials=3, sampler="gpyopt", seed=9, study_name="other", storage="sqlite:///x.db"
    )
    assert changed.budget.trials == 3
    assert changed.sampler.name == "gpyopt" and changed.sampler.seed == 9
    assert changed.sampler.options == {}
    assert changed.study.name == "other"
    assert changed.storage == "sqlite:///x.db"
    # Everything else is untouched, and the original is unchanged.
    assert changed.dataset == config.dataset and changed.search_space == config.search_space
    assert config.budget.trials == 10 and config.sampler.name == "tpe"


def test_overrides_none_change_nothing() -> None:
    config = validate_config(QUICK)
    same = config.with_overrides(
        trials=None, sampler=None, seed=None, study_name=None, storage=None
    )
    assert same == config


def test_override_keeps_options_of_the_same_sampler() -> None:
    config = validate_config(mutate("sampler", {"name": "tpe", "seed": 1, "options": {"a": 1}}))
    assert config.with_overrides(sampler="tpe").sampler.options == {"a": 1}
    assert config.with_overrides(sampler="random").sampler.options == {}
    assert config.with_overrides(sampler="random").sampler.seed == 1


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"sampler": "nope"}, "sampler.name: unknown sampler 'nope'"),
        ({"trials": 0}, "budget.trials: "),
        ({"trials": -1}, "budget.trials: "),
        ({"seed": -1}, "sampler.seed: "),
        ({"study_name": "\x00"}, "study.name: "),
    ],
)
def test_bad_overrides(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(QUICK).with_overrides(**changes)
    assert str(info.value).startswith("command line: ")
    assert fragment in str(info.value)


# --------------------------------------------------------------------------
# property: any input gives a StudyConfig or a ConfigError, nothing else

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70).map(lambda i: i * 10**300),  # too big for a float
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["float", "int", "categorical", "none", "imagenet", "tpe", "directory"]),
)
yamlish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4),
    ),
    max_leaves=20,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    return out


QUICK_PATHS = _paths(QUICK)


def _validates_or_config_error(data: Any) -> None:
    try:
        result = validate_config(data)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(result, StudyConfig)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yamlish)
def test_random_structures(data: Any) -> None:
    _validates_or_config_error(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(QUICK_PATHS),
            st.one_of(st.just(DELETE), scalars, yamlish),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_quickstart(edits: list[tuple[tuple[Any, ...], Any]]) -> None:
    data: Any = copy.deepcopy(QUICK)
    for path, value in edits:
        node = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue  # an earlier edit replaced a parent
        if value is DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    _validates_or_config_error(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_raw_yaml_text(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "study.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        result = load_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert isinstance(result, StudyConfig)


@pytest.mark.parametrize(
    ("data_edit", "expected"),
    [
        (
            {"dataset": {"source": "digits", "image_szie": 32}},
            "s.yaml: dataset.image_szie: unknown key; did you mean 'image_size'? allowed: source, "
            "path, image_size,",
        ),
        ({"sampeler": {"name": "tpe"}}, "s.yaml: sampeler: unknown key; did you mean 'sampler'?"),
        (
            {"search_space": {"dropout": {"type": "float", "low": 0.0, "hihg": 0.5}}},
            "search_space.dropout.hihg: unknown key; did you mean 'high'? allowed: type, low, "
            "high, log, step, choices",
        ),
        ({"training": {"data": {"prefech": 2}}}, "did you mean 'prefetch'? allowed: cache,"),
    ],
)
def test_unknown_keys_get_suggestions_and_allowed_keys(
    data_edit: dict[str, Any], expected: str
) -> None:
    data = {
        "study": {"name": "x"},
        "dataset": {"source": "digits"},
        "model": {"backbone": "small_cnn"},
        **data_edit,
    }
    with pytest.raises(ConfigError) as err:
        validate_config(data, source="s.yaml")
    assert expected in str(err.value)


def test_unknown_key_far_from_any_name_lists_allowed_keys_only() -> None:
    data = {
        "study": {"name": "x"},
        "dataset": {"source": "digits"},
        "model": {"backbone": "small_cnn", "zzz": 1},
    }
    with pytest.raises(ConfigError) as err:
        validate_config(data, source="s.yaml")
    assert str(err.value) == "s.yaml: model.zzz: unknown key; allowed: backbone, weights, pooling"
