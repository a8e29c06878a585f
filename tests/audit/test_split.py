"""``dataset.duplicates``: group keeps copies in one split, error refuses a leaking split."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpo import data as data_mod
from hpo.config import DatasetSection
from hpo.data import Dataset, load_dataset
from hpo.errors import DataError
from tests.audit.planted import make_folder, make_npz
from tests.helpers import run_cli, write


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()


def _section(root: Path, **kw: Any) -> DatasetSection:
    return DatasetSection.model_validate(
        {"source": "directory", "path": str(root), "image_size": 16, "channels": 1, **kw}
    )


def _split_of(ds: Dataset) -> dict[str, str]:
    return {str(f): s for s in ("train", "val", "test") for f in ds.split(s).ids}  # type: ignore[union-attr]


def _crossing(groups: list[set[str]], split_of: dict[str, str]) -> list[set[str]]:
    return [g for g in groups if len({split_of[f] for f in g}) > 1]


def test_group_puts_each_planted_duplicate_in_one_split(tmp_path: Path) -> None:
    planted = make_folder(tmp_path / "mri")
    plain = load_dataset(_section(tmp_path / "mri"))
    assert _crossing(planted.groups, _split_of(plain)), "the plain split must leak to begin with"
    data_mod.clear_cache()
    grouped = load_dataset(_section(tmp_path / "mri", duplicates="group"))
    assert _crossing(planted.groups, _split_of(grouped)) == []
    sizes = [len(grouped.split(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == sum(len(plain.split(s)) for s in ("train", "val", "test"))
    assert min(sizes) > 0


def test_group_merges_duplicates_with_subject_groups(tmp_path: Path) -> None:
    planted = make_folder(tmp_path / "mri")
    files = sorted(
        p.relative_to(tmp_path / "mri").as_posix() for p in (tmp_path / "mri").rglob("*.*")
    )
    # Two images per subject, and one copy links subject pairs: all of them must stay together.
    subject = {f: f"s{i // 2}" for i, f in enumerate(files)}
    with (tmp_path / "groups.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "group"])
        writer.writerows(subject.items())
    ds = load_dataset(
        _section(tmp_path / "mri", groups=str(tmp_path / "groups.csv"), duplicates="group")
    )
    split_of = _split_of(ds)
    for group in planted.groups:
        subjects = {subject[f] for f in group}
        together = {f for f in files if subject[f] in subjects}
        assert len({split_of[f] for f in together}) == 1, together


def test_error_refuses_a_leaking_split_and_accepts_a_clean_one(tmp_path: Path) -> None:
    make_folder(tmp_path / "mri")
    with pytest.raises(DataError) as err:
        load_dataset(_section(tmp_path / "mri", duplicates="error"))
    message = str(err.value)
    assert message.startswith("dataset.duplicates: ") and "group(s)" in message
    assert "hpo audit" in message and "\n" not in message
    clean = make_folder(tmp_path / "clean", copies=0)
    data_mod.clear_cache()
    ds = load_dataset(_section(clean.root, duplicates="error"))
    data_mod.clear_cache()
    assert _split_of(ds) == _split_of(load_dataset(_section(clean.root)))


def test_given_splits_cannot_be_grouped_but_are_checked(tmp_path: Path) -> None:
    make_npz(tmp_path / "scans.npz")
    npz = {"source": "npz", "path": str(tmp_path / "scans.npz"), "image_size": 28, "channels": 1}
    with pytest.raises(DataError, match=r"'group' cannot move images between the splits"):
        load_dataset(DatasetSection.model_validate({**npz, "duplicates": "group"}))
    with pytest.raises(DataError, match=r"2 duplicate group\(s\) \(4 images\) cross"):
        load_dataset(DatasetSection.model_validate({**npz, "duplicates": "error"}))
    assert len(load_dataset(DatasetSection.model_validate(npz)).val) == 20


def test_run_with_a_leaking_split_exits_2_and_creates_no_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    make_folder(tmp_path / "mri")
    study = write(
        tmp_path,
        {
            "study": {"name": "leaky"},
            "dataset": {
                "source": "directory",
                "path": str(tmp_path / "mri"),
                "image_size": 16,
                "channels": 1,
                "duplicates": "error",
            },
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 1},
            "search_space": {"batch_size": 8},
            "budget": {"trials": 1},
        },
    )
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    code, _, err = run_cli(capsys, "run", str(study), "--storage", url, "-q")
    assert code == 2
    line = err.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith(f"error: {study}: dataset.duplicates: ")
    assert "run 'hpo audit STUDY_FILE' to see them" in line
    assert optuna.get_all_study_names(url) == []
