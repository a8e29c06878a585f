"""The audit finds every planted trap, and nothing else, in folders, .npz files and study files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpo import data as data_mod
from hpo.audit import audit, study_warning
from hpo.config import DatasetSection
from hpo.data import load_dataset
from tests.audit.planted import CLASSES, make_folder, make_npz
from tests.helpers import write


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()


def _ids(group: object) -> set[str]:
    return {m.id for m in group.members}  # type: ignore[attr-defined]


def test_folder_every_planted_duplicate_and_odd_image(tmp_path: Path) -> None:
    planted = make_folder(tmp_path / "mri")
    result = audit(tmp_path / "mri")
    found = {frozenset(_ids(g)): g for g in result.groups}
    assert set(found) == {frozenset(g) for g in planted.groups}, "all planted, no others"
    for group in planted.exact:
        g = found[frozenset(group)]
        assert (g.kind, g.same_file_bytes, g.label_conflict) == ("exact", True, False)
    for group in planted.near:
        g = found[frozenset(group)]
        assert (g.kind, g.same_file_bytes, g.label_conflict) == ("near", False, False)
        assert max(m.distance for m in g.members) <= result.threshold
        assert min(m.correlation for m in g.members) >= 0.97
    for group in planted.conflict:
        g = found[frozenset(group)]
        assert g.kind == "exact" and g.label_conflict and len(g.classes) == 2
    odd = {o.id: {r.split(":")[0] for r in o.reasons} for o in result.odd}
    assert set(odd) == set(planted.odd)
    for file, kind in planted.odd.items():
        assert kind in odd[file]
    summary = result.summary()
    assert summary["exact_copies"] == len(planted.exact) + len(planted.conflict)
    assert summary["near_groups"] == len(planted.near)
    assert summary["label_conflicts"] == len(planted.conflict)


def test_folder_cross_split_matches_the_split_training_uses(tmp_path: Path) -> None:
    planted = make_folder(tmp_path / "mri")
    result = audit(tmp_path / "mri")
    # The split a study with default settings gets, built independently of the audit.
    section = DatasetSection.model_validate(
        {"source": "directory", "path": str(tmp_path / "mri"), "image_size": 16}
    )
    ds = load_dataset(section)
    split_of = {str(f): s for s in ("train", "val", "test") for f in ds.split(s).ids}  # type: ignore[union-attr]
    crossing = {frozenset(g) for g in planted.groups if len({split_of[f] for f in g}) > 1}
    assert crossing, "the seed must put some planted copies on both sides of a split"
    assert {frozenset(_ids(g)) for g in result.groups if g.cross_split} == crossing
    counts = result.counts()
    for split in ("train", "val", "test"):
        assert sum(counts[split].values()) == len(ds.split(split))
        assert counts[split] == dict(
            zip(ds.class_names, ds.split(split).counts(ds.n_classes), strict=True)
        )


def test_npz_given_splits_cross_split_and_label_conflict(tmp_path: Path) -> None:
    planted = make_npz(tmp_path / "scans.npz")
    result = audit(tmp_path / "scans.npz")
    found = {frozenset(_ids(g)): g for g in result.groups}
    assert set(found) == {frozenset(v) for v in planted.values()}
    exact = found[frozenset(planted["cross_exact"])]
    assert exact.kind == "exact" and exact.splits == ["train", "val"]
    near = found[frozenset(planted["cross_near"])]
    assert near.kind == "near" and near.splits == ["train", "test"] and not near.label_conflict
    conflict = found[frozenset(planted["conflict"])]
    assert conflict.label_conflict and not conflict.cross_split
    assert result.images.given_splits
    assert {s: sum(c.values()) for s, c in result.counts().items()} == {
        "train": 60,
        "val": 20,
        "test": 20,
    }
    assert result.odd == []


def test_study_file_is_audited_with_its_own_split(tmp_path: Path) -> None:
    make_folder(tmp_path / "mri")
    dataset = {
        "source": "directory",
        "path": str(tmp_path / "mri"),
        "image_size": 24,
        "channels": 1,
        "split_seed": 7,
        "val_fraction": 0.2,
    }
    study = write(
        tmp_path,
        {"study": {"name": "s"}, "dataset": dataset, "model": {"backbone": "small_cnn"}},
    )
    result = audit(study)
    ds = load_dataset(DatasetSection.model_validate(dataset))
    assert result.counts()["val"] == dict(
        zip(ds.class_names, ds.split("val").counts(ds.n_classes), strict=True)
    )
    assert result.images.settings["image_size"] == [24, 24]
    assert result.images.parts[0].shape[1:] == (24, 24, 1)


def test_study_warning_is_one_line_or_none(tmp_path: Path) -> None:
    planted = make_folder(tmp_path / "mri")
    section = {"source": "directory", "path": str(tmp_path / "mri"), "image_size": 32}
    ds = load_dataset(DatasetSection.model_validate(section))
    line = study_warning(ds, "study.yaml")
    assert line is not None and "\n" not in line
    n_exact = len(planted.exact) + len(planted.conflict)
    assert line.startswith(f"audit: {n_exact} exact duplicate(s) in {n_exact} group(s), ")
    assert f"{len(planted.near)} near-duplicate group(s)" in line
    assert f"{len(planted.conflict)} label conflict(s)" in line
    assert line.endswith("run 'hpo audit study.yaml' for details")
    clean = tmp_path / "clean"
    for name in CLASSES:
        (clean / name).mkdir(parents=True)
        for f in sorted((tmp_path / "mri" / name).glob("img_*.png"))[30:]:
            (clean / name / f.name).write_bytes(f.read_bytes())
    data_mod.clear_cache()
    clean_ds = load_dataset(DatasetSection.model_validate({**section, "path": str(clean)}))
    assert study_warning(clean_ds, "study.yaml") is None


@pytest.mark.parametrize("setting", ["error", "group"])
def test_a_refusing_setting_does_not_stop_the_audit(tmp_path: Path, setting: str) -> None:
    planted = make_npz(tmp_path / "scans.npz")
    dataset = {"source": "npz", "path": str(tmp_path / "scans.npz"), "duplicates": setting}
    study = write(
        tmp_path,
        {"study": {"name": "s"}, "dataset": dataset, "model": {"backbone": "small_cnn"}},
    )
    result = audit(study)
    assert result.summary()["cross_split_groups"] == 2
    assert len(result.groups) == len(planted)
    if setting == "group":
        assert result.images.warnings and "cannot move images" in result.images.warnings[0]
    else:
        assert result.images.warnings == []
