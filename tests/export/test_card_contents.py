"""What a clinician needs from an export: images named on the card, and ``predict``
saying which images the model has already seen.

One real export of a private copy of the session's image study.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from hpo import keys
from hpo.config import validate_config
from hpo.data import load_dataset
from hpo.export import CARD_FILE, METADATA_FILE, SPLITS_FILE, image_hash
from tests.helpers import run_cli
from tests.image_study import N_CLASSES, SIZE, ImageStudy, class_name

pytestmark = pytest.mark.slow

PER_CLASS = 2


@pytest.fixture(scope="module")
def exported(image_study: ImageStudy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hpo.cli import main

    root = tmp_path_factory.mktemp("card-contents")
    url = f"sqlite:///{root / 'copy.db'}"
    optuna.copy_study(
        from_study_name=image_study.name, from_storage=image_study.url, to_storage=url
    )
    out = root / "model"
    args = ["export", image_study.name, "--storage", url, "--out", str(out), "--bootstrap", "0"]
    try:
        main([*args, "--gradcam-per-class", str(PER_CLASS)])
    except SystemExit as exc:
        assert not exc.code
    return out


@pytest.fixture(scope="module")
def splits(image_study: ImageStudy) -> dict[str, list[str]]:
    """The study's test split: relative file names per split, as the export saw them."""
    study = optuna.load_study(study_name=image_study.name, storage=image_study.url)
    dataset = load_dataset(validate_config(study.user_attrs[keys.STUDY_CONFIG]).dataset)
    return {s: [str(f) for f in dataset.split(s).ids] for s in ("train", "val", "test")}  # type: ignore[union-attr]


def test_gradcam_captions_name_the_file_the_class_and_the_prediction(
    exported: Path, splits: dict[str, list[str]], image_study: ImageStudy
) -> None:
    card = (exported / CARD_FILE).read_text()
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", card, re.S)
    assert len(captions) == PER_CLASS * N_CLASSES
    pattern = re.compile(
        r"<code>(?P<file>[^<]+)</code><br>true (?P<true>[^·]+) · predicted\s*"
        r"<span[^>]*>(?P<pred>[^<]+)</span>\s*\((?P<p>\d+\.\d) %\)"
    )
    names = [class_name(k) for k in range(N_CLASSES)]
    seen = []
    for caption in captions:
        m = pattern.search(caption)
        assert m is not None, caption
        file = html.unescape(m["file"])
        assert file in splits["test"] and (image_study.data / file).is_file()
        true = html.unescape(m["true"]).strip()
        assert file.startswith(true + "/")  # the class folder is the true class
        assert html.unescape(m["pred"]) in names and 0 < float(m["p"]) <= 100
        seen.append(file)
    assert len(set(seen)) == len(seen)
    assert "test image 0" not in card and "share this card as you would share the data" in card


def test_export_stores_the_content_hash_of_every_split_image(
    exported: Path, image_study: ImageStudy, splits: dict[str, list[str]]
) -> None:
    from hpo.data import decode_file
    from hpo.export import sha256_file

    meta = json.loads((exported / METADATA_FILE).read_text())
    doc = json.loads((exported / SPLITS_FILE).read_text())
    assert meta["splits"]["sha256"] == sha256_file(exported / SPLITS_FILE)
    assert doc["format"] == "hpo-splits/1" and doc["input_shape"] == [SIZE, SIZE, 1]
    for split, files in splits.items():
        expected = {image_hash(decode_file(image_study.data / f, (SIZE, SIZE), 1)) for f in files}
        assert set(doc[split]) == expected, split


def write_images(folder: Path, image_study: ImageStudy, splits: dict[str, list[str]]) -> None:
    """One image of each split under new names, a lossless copy, and one never seen."""
    from PIL import Image

    folder.mkdir()
    for split in ("train", "val", "test"):
        shutil.copy(image_study.data / splits[split][0], folder / f"a_{split}.png")
    Image.open(image_study.data / splits["test"][1]).save(folder / "b_test_as.bmp")
    noise = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "c_new.png")


EXPECTED = {
    "a_train.png": "train",
    "a_val.png": "val",
    "a_test.png": "test",
    "b_test_as.bmp": "test",
    "c_new.png": "-",
}


def test_predict_marks_images_of_the_studys_splits(
    exported: Path,
    image_study: ImageStudy,
    splits: dict[str, list[str]],
    tmp_path: Path,
    capsys: Any,
) -> None:
    folder = tmp_path / "scans"
    write_images(folder, image_study, splits)

    code, out, err = run_cli(capsys, "predict", str(exported), str(folder), "--format", "json")
    assert code == 0, err
    assert {Path(r["file"]).name: r["in_split"] for r in json.loads(out)} == EXPECTED

    code, out, err = run_cli(capsys, "predict", str(exported), str(folder), "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {Path(r["file"]).name: r["in_split"] for r in rows} == EXPECTED

    code, out, err = run_cli(capsys, "predict", str(exported), str(folder))
    assert code == 0, err
    assert "in_split" in out
    for name, split in EXPECTED.items():
        line = next(line for line in out.splitlines() if name in line)
        assert re.search(rf"│\s*{re.escape(split)}\s*│", line), line


def test_predict_says_when_it_cannot_tell(
    exported: Path, image_study: ImageStudy, tmp_path: Path, capsys: Any
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(exported, copy)
    doc = json.loads((copy / SPLITS_FILE).read_text())
    doc["test"] = []
    (copy / SPLITS_FILE).write_text(json.dumps(doc))  # no longer what model.json recorded
    image = sorted((image_study.data / class_name(0)).iterdir())[0]
    code, out, err = run_cli(capsys, "predict", str(copy), str(image), "--format", "json")
    assert code == 0, err
    assert [r["in_split"] for r in json.loads(out)] == ["?"]
    assert "in_split unknown" in err and "does not match the sha256" in err


def test_array_datasets_name_images_by_their_index(tmp_path: Path) -> None:
    from hpo.export._export import names_of_test_images

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.arange(n) % 2
    np.savez(tmp_path / "organs.npz", **arrays)  # type: ignore[arg-type]
    given = validate_config(
        {
            "study": {"name": "n"},
            "dataset": {"source": "npz", "path": str(tmp_path / "organs.npz"), "image_size": 8},
            "model": {"backbone": "small_cnn", "weights": "none"},
        }
    ).dataset
    names = names_of_test_images(load_dataset(given), given)
    assert names == [f"organs.npz: test_images[{i}]" for i in range(6)]
    digits = validate_config(
        {
            "study": {"name": "d"},
            "dataset": {"source": "digits", "image_size": 8, "max_per_class": 10},
            "model": {"backbone": "small_cnn", "weights": "none"},
        }
    ).dataset
    dataset = load_dataset(digits)
    assert names_of_test_images(dataset, digits) == [
        f"test split image {i}" for i in range(len(dataset.test))
    ]
