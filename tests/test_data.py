from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hpo import data as data_mod
from hpo.config import DatasetSection
from hpo.data import load_dataset
from hpo.errors import DataError

CLASSES = {"Mild_Demented": 12, "Moderate_Demented": 9, "Non_Demented": 15}


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()


def make_folder(root: Path, classes: dict[str, int] = CLASSES, seed: int = 0) -> Path:
    """Class folders with PNG and JPEG, grayscale and RGB, of mixed sizes."""
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            size = (20 + (i % 3) * 7, 24 + (i % 2) * 9)
            if i % 2:
                arr = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
                arr[..., k] = 255
                Image.fromarray(arr).save(folder / f"img_{i}.jpg", quality=90)
            else:
                arr = rng.integers(0, 255, size, dtype=np.uint8)
                Image.fromarray(arr, mode="L").save(folder / f"img_{i}.png")
    return root


def section(**kw: object) -> DatasetSection:
    return DatasetSection.model_validate({"source": "directory", **kw})


def test_directory_layout(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mri")
    ds = load_dataset(section(path=str(root), image_size=16, channels=3))
    assert ds.class_names == sorted(CLASSES)
    assert ds.input_shape == (16, 16, 3)
    assert ds.train.x.dtype == np.uint8
    assert len(ds.train) + len(ds.val) + len(ds.test) == sum(CLASSES.values())
    for split in (ds.train, ds.val, ds.test):
        assert set(split.y.tolist()) == {0, 1, 2}, "stratified: every class in every split"
    fp = ds.fingerprint()
    assert fp["class_counts"] == dict(sorted(CLASSES.items()))
    assert sum(fp["split_counts"]["val"].values()) == len(ds.val)
    gray = load_dataset(section(path=str(root), image_size=[10, 14], channels=1))
    assert gray.input_shape == (10, 14, 1)


def test_split_is_fixed_by_seed_and_fingerprint_tracks_content(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mri")
    a = load_dataset(section(path=str(root), image_size=12))
    data_mod.clear_cache()
    b = load_dataset(section(path=str(root), image_size=12))
    assert a.sha256 == b.sha256
    assert list(a.test.ids) == list(b.test.ids)  # type: ignore[arg-type]
    data_mod.clear_cache()
    other = load_dataset(section(path=str(root), image_size=12, split_seed=7))
    assert list(other.test.ids) != list(a.test.ids)  # type: ignore[arg-type]
    # Changing one file changes the content hash.
    victim = next((root / "Non_Demented").glob("*.png"))
    Image.fromarray(np.zeros((20, 24), dtype=np.uint8), mode="L").save(victim)
    data_mod.clear_cache()
    assert load_dataset(section(path=str(root), image_size=12)).sha256 != a.sha256


def test_max_per_class(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mri")
    ds = load_dataset(section(path=str(root), image_size=12, max_per_class=6))
    assert ds.fingerprint()["class_counts"] == {c: 6 for c in sorted(CLASSES)}


def test_group_aware_split(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mri", {"a": 24, "b": 24, "c": 24})
    groups = tmp_path / "groups.csv"
    lines = ["file,group"]
    for cls in ("a", "b", "c"):
        for i in range(24):
            lines.append(f"{cls}/img_{i}.{'jpg' if i % 2 else 'png'},subject_{cls}_{i // 3}")
    groups.write_text("\n".join(lines) + "\n")
    ds = load_dataset(section(path=str(root), image_size=12, groups=str(groups)))
    subject = {row.split(",")[0]: row.split(",")[1] for row in lines[1:]}
    seen = [
        {subject[f] for f in split.ids}  # type: ignore[union-attr]
        for split in (ds.train, ds.val, ds.test)
    ]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert all(seen)


def test_group_csv_missing_a_file(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mri")
    groups = tmp_path / "groups.csv"
    groups.write_text("file,group\nMild_Demented/img_0.png,s1\n")
    with pytest.raises(DataError, match="have no group"):
        load_dataset(section(path=str(root), image_size=12, groups=str(groups)))


def test_corrupt_image_error_or_skip(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mri")
    bad = root / "Non_Demented" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png"):
        load_dataset(section(path=str(root), image_size=12))
    ds = load_dataset(section(path=str(root), image_size=12, on_corrupt="skip"))
    assert ds.warnings and "broken.png" in ds.warnings[0]
    assert sum(ds.fingerprint()["class_counts"].values()) == sum(CLASSES.values())


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "no class sub-folders"),
        (lambda root: make_folder(root, {"only": 6}), "only one class"),
        (lambda root: make_folder(root, {"a": 6, "b": 2}), "at least 3"),
    ],
)
def test_bad_folders(tmp_path: Path, setup, needle: str) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "mri"
    setup(root)
    with pytest.raises(DataError, match=needle):
        load_dataset(section(path=str(root), image_size=12))


def test_npz_with_given_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "organ.npz"
    np.savez(
        path,
        train_images=rng.integers(0, 255, (30, 28, 28), dtype=np.uint8),
        train_labels=(np.arange(30) % 3).reshape(-1, 1),
        val_images=rng.integers(0, 255, (9, 28, 28), dtype=np.uint8),
        val_labels=(np.arange(9) % 3).reshape(-1, 1),
        test_images=rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
        test_labels=(np.arange(6) % 3).reshape(-1, 1),
    )
    ds = load_dataset(DatasetSection(source="npz", path=str(path), image_size=16, channels=3))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 9, 6)
    assert ds.input_shape == (16, 16, 3)
    assert ds.class_names == ["0", "1", "2"]


def test_npz_train_only_is_split(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, train_images=np.zeros((40, 8, 8), np.float32), train_labels=np.arange(40) % 2)
    ds = load_dataset(DatasetSection(source="npz", path=str(path), image_size=8, channels=1))
    assert len(ds.train) + len(ds.val) + len(ds.test) == 40 and len(ds.test) > 0


def test_npz_refuses_pickles(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, train_images=np.array([object()], dtype=object), train_labels=np.array([0]))
    with pytest.raises(DataError, match="pickled objects, refused"):
        load_dataset(DatasetSection(source="npz", path=str(path), image_size=8))


def test_digits_demo() -> None:
    ds = load_dataset(DatasetSection(source="digits", image_size=12, channels=1, max_per_class=10))
    assert ds.n_classes == 10 and ds.input_shape == (12, 12, 1)
    assert ds.fingerprint()["class_counts"] == {str(i): 10 for i in range(10)}


# --- formats, group files, npz class names, decoding once --------------------

FORMATS = {  # suffix -> PIL save options; all lossless except JPEG
    "png": {},
    "bmp": {},
    "tif": {},
    "tiff": {"compression": "tiff_lzw"},
    "gif": {},
    "webp": {"lossless": True},
    "jpg": {"quality": 95},
    "jpeg": {"quality": 95},
}


def test_every_listed_image_format_is_read(tmp_path: Path) -> None:
    """PNG, JPEG, BMP, TIFF, GIF and WebP, grayscale and RGB, decoded to the same pixels."""
    root = tmp_path / "mri"
    rng = np.random.default_rng(3)
    expected: dict[str, np.ndarray] = {}
    for k, name in enumerate(("a", "b", "c")):
        (root / name).mkdir(parents=True)
        for i, (suffix, options) in enumerate(FORMATS.items()):
            gray = rng.integers(0, 256, (12, 12), dtype=np.uint8)
            image = Image.fromarray(gray, mode="L")
            if (i + k) % 2:  # half of them RGB with equal channels: the same gray image
                image = image.convert("RGB")
            rel = f"{name}/{suffix}_{i}.{suffix}"
            image.save(root / rel, **options)
            expected[rel] = gray
    ds = load_dataset(section(path=str(root), image_size=12, channels=1))
    decoded = {
        str(rel): x[..., 0]
        for split in (ds.train, ds.val, ds.test)
        for rel, x in zip(split.ids, split.x, strict=True)  # type: ignore[arg-type]
    }
    assert sorted(decoded) == sorted(expected), "an image format was skipped"
    for rel, gray in expected.items():
        if rel.endswith((".jpg", ".jpeg")):
            assert np.abs(decoded[rel].astype(int) - gray).mean() < 8, rel
        else:
            np.testing.assert_array_equal(decoded[rel], gray, err_msg=rel)


def test_groups_csv_with_bare_file_names(tmp_path: Path) -> None:
    """Scans named per subject (s03_slice2.png): the CSV may list names without folders."""
    root = tmp_path / "mri"
    rng = np.random.default_rng(0)
    rows = ["file,group"]
    for cls in ("a", "b", "c"):
        (root / cls).mkdir(parents=True)
        for subject in range(8):
            for s in range(3):
                name = f"{cls}{subject:02d}_slice{s}.png"
                pixels = rng.integers(0, 255, (10, 10), dtype=np.uint8)
                Image.fromarray(pixels, mode="L").save(root / cls / name)
                rows.append(f"{name},{cls}-subject{subject}")
    groups = tmp_path / "groups.csv"
    groups.write_text("\n".join(rows) + "\n")
    ds = load_dataset(section(path=str(root), image_size=10, groups=str(groups)))
    subject_of = {r.split(",")[0]: r.split(",")[1] for r in rows[1:]}
    seen = [
        {subject_of[Path(str(f)).name] for f in split.ids}  # type: ignore[union-attr]
        for split in (ds.train, ds.val, ds.test)
    ]
    assert all(seen) and not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2]), (
        "a subject's slices landed in two splits"
    )


def test_ambiguous_bare_names_in_groups_csv_are_refused(tmp_path: Path) -> None:
    """img_0.png exists in every class folder: a bare name cannot say which subject it is."""
    root = make_folder(tmp_path / "mri")
    groups = tmp_path / "groups.csv"
    lines = ["file,group"] + [
        f"img_{i}.{'jpg' if i % 2 else 'png'},s{i}" for i in range(max(CLASSES.values()))
    ]
    groups.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"dataset\.groups: .*'img_0\.png' .* 3 images"):
        load_dataset(section(path=str(root), image_size=12, groups=str(groups)))


def test_npz_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "organs.npz"
    names = np.array(["liver", "kidney-left", "kidney-right"])  # a string array, not objects
    np.savez(
        path,
        train_images=rng.integers(0, 255, (30, 8, 8), dtype=np.uint8),
        train_labels=np.arange(30) % 3,
        class_names=names,
    )
    ds = load_dataset(DatasetSection(source="npz", path=str(path), image_size=8))
    assert ds.class_names == ["liver", "kidney-left", "kidney-right"]
    assert list(ds.fingerprint()["class_counts"]) == ds.class_names
    short = tmp_path / "short.npz"
    np.savez(
        short,
        train_images=np.zeros((30, 8, 8), np.uint8),
        train_labels=np.arange(30) % 3,
        class_names=names[:2],
    )
    with pytest.raises(DataError, match="class_names lists 2 names for 3 classes"):
        load_dataset(DatasetSection(source="npz", path=str(short), image_size=8))


def test_images_are_decoded_once_per_process(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mri")
    cfg = section(path=str(root), image_size=12)
    first = load_dataset(cfg)
    for image in root.rglob("*.*"):
        image.unlink()  # a second decode would now fail
    again = load_dataset(section(path=str(root), image_size=12))
    assert again is first, "the same study file decoded the images again"
    with pytest.raises(DataError):
        load_dataset(section(path=str(root), image_size=14))  # other settings: decoded anew
