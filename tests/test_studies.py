"""Creating and resuming studies: the recipe check, the fingerprint, the lookups."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hpo import keys
from hpo.config import validate_config
from hpo.errors import ConfigError, DataError, HpoError
from hpo.storage import open_storage
from hpo.studies import (
    RESULT_NEUTRAL,
    load_existing,
    make_study,
    recipe_changes,
    record_fingerprint,
)

BASE: dict[str, Any] = {
    "study": {"name": "recipe"},
    "dataset": {"source": "digits", "image_size": 48, "channels": 1, "max_per_class": 20},
    "model": {"backbone": "small_cnn", "weights": "none"},
    "training": {"head_epochs": 2, "finetune_epochs": 0},
    "search_space": {
        "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        "batch_size": 16,
    },
    "sampler": {"name": "tpe", "seed": 1},
    "budget": {"trials": 2},
}


def _changed(**edits: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for path, value in edits.items():
        *head, last = path.split("__")
        node = data
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return data


def test_changed_image_size_is_refused_naming_old_and_new(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    study = make_study(validate_config(BASE), storage)
    with pytest.raises(ConfigError) as err:
        make_study(validate_config(_changed(dataset__image_size=32)), storage)
    assert "dataset.image_size 48 -> 32" in str(err.value)
    assert "nothing was changed" in str(err.value)
    # The stored recipe is untouched.
    again = load_existing(storage, "recipe")
    assert again.user_attrs[keys.STUDY_CONFIG]["dataset"]["image_size"] == 48
    assert study.study_name == again.study_name


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"training__head_epochs": 3}, "training.head_epochs 2 -> 3"),
        ({"training__augment": True}, "training.augment false -> true"),
        ({"model__pooling": "max"}, "model.pooling avg -> max"),
        ({"objective__metric": "accuracy"}, "objective.metric macro_f1 -> accuracy"),
        ({"search_space__batch_size": 32}, "search_space.batch_size 16 -> 32"),
        ({"dataset__split_seed": 7}, "dataset.split_seed 42 -> 7"),
    ],
)
def test_every_recipe_section_is_compared(edit: dict[str, Any], field: str) -> None:
    changes = recipe_changes(BASE, _changed(**edit))
    listed = [
        f"{p} {o} -> {n}".replace("False", "false").replace("True", "true")
        for p, o, n in changes
    ]
    assert listed == [field]


def test_added_parameter_is_a_change() -> None:
    new = _changed(search_space__dropout={"type": "float", "low": 0.0, "high": 0.5})
    (path, old, _new), *rest = recipe_changes(BASE, new)
    assert not rest
    assert path.startswith("search_space.dropout") and old == "(absent)"


def test_result_neutral_fields_and_sampler_budget_may_change(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    make_study(validate_config(BASE), storage)
    relaxed = _changed(
        training__cache_dir="/tmp/elsewhere",
        training__cache_max_gb=9.0,
        training__trial_timeout=60.0,
        training__data={"prefetch": 2},
        sampler={"name": "random", "seed": 3},
        budget={"trials": 50},
    )
    assert recipe_changes(BASE, relaxed) == []
    make_study(validate_config(relaxed), storage)  # no error
    assert "dataset.path" in RESULT_NEUTRAL


def test_defaults_added_later_do_not_count_as_changes() -> None:
    # A study stored before a field existed compares equal to the same file now.
    stored = copy.deepcopy(BASE)
    current = validate_config(BASE).to_dict()
    assert recipe_changes(stored, current) == []


def test_fingerprint_of_other_data_is_refused(sqlite_url: str) -> None:
    study = make_study(validate_config(BASE), open_storage(sqlite_url))
    record_fingerprint(study, {"sha256": "a" * 64, "split_counts": {"train": 10}})
    record_fingerprint(study, {"sha256": "a" * 64, "split_counts": {"train": 10}})
    with pytest.raises(DataError, match="different data"):
        record_fingerprint(study, {"sha256": "b" * 64, "split_counts": {"train": 10}})


def test_missing_study_names_the_storage(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(HpoError) as err:
        load_existing(storage, "nope", where="sqlite:///x.db")
    assert str(err.value) == "no study named 'nope' in sqlite:///x.db; it holds no study"


def test_creating_a_study_warns_about_duplicates_in_its_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpo.studies import create_or_resume

    npz = Path(__file__).resolve().parents[1] / "data" / "medmnist" / "breastmnist.npz"
    data = {
        "study": {"name": "breast"},
        "dataset": {"source": "npz", "path": str(npz), "image_size": 28, "channels": 1},
        "model": {"backbone": "small_cnn", "weights": "none"},
        "search_space": {"batch_size": 16},
    }
    create_or_resume(validate_config(data), f"sqlite:///{tmp_path / 'x.db'}", source="b.yaml")
    err = capsys.readouterr().err
    assert "warning: audit: 1 exact duplicate(s) in 1 group(s), 140 near-duplicate group(s)" in err
    assert "run 'hpo audit b.yaml' for details" in err
