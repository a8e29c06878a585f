"""hpo.export._integrity without training: metadata checks, sha256, safe loading.

A model folder is trusted only through ``model.json``: each field is checked
for shape and type, the model file's bytes must hash to the recorded sha256,
and loading runs in Keras safe mode. A tiny untrained model stands in for an
export, so these run in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hpo.errors import HpoError
from hpo.export import METADATA_FILE, MODEL_FILE, load_exported, read_metadata, sha256_file
from hpo.export._integrity import FORMAT, load_model_safely, verify_model_file, write_atomic


def tiny_model(path: Path, shape: tuple[int, int, int] = (8, 8, 1), classes: int = 3) -> None:
    import keras

    inputs = keras.Input(shape)
    outputs = keras.layers.Dense(classes, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(path)


def export_folder(root: Path, **meta: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tiny_model(root / MODEL_FILE)
    metadata = {
        "format": FORMAT,
        "class_names": ["a", "b", "c"],
        "input_shape": [8, 8, 1],
        "model_sha256": sha256_file(root / MODEL_FILE),
        **meta,
    }
    (root / METADATA_FILE).write_text(json.dumps(metadata))
    return root


def test_a_good_folder_loads(tmp_path: Path) -> None:
    folder = export_folder(tmp_path / "m")
    model, info = load_exported(folder)
    assert info.class_names == ["a", "b", "c"] and info.input_shape == (8, 8, 1)
    assert info.model_path == folder / MODEL_FILE and info.folder == folder
    assert info.metadata["format"] == FORMAT
    assert model.output_shape == (None, 3)


def test_sha256_file_reads_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom((1 << 20) * 2 + 123)  # over two 1 MiB chunks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


BAD_METADATA = [
    ({"format": "other/1"}, r"not hpo model metadata \(expected format 'hpo-model/1'\)"),
    ({"class_names": ["only"]}, "'class_names' must list at least two names"),
    ({"class_names": "ab"}, "'class_names' must list at least two names"),
    ({"class_names": ["a", 2]}, "'class_names' must list at least two names"),
    ({"input_shape": [8, 8]}, r"'input_shape' must be \[height, width, 1\|3\]"),
    ({"input_shape": [8, 8, 2]}, r"'input_shape' must be \[height, width, 1\|3\]"),
    ({"input_shape": [8, 0, 1]}, r"'input_shape' must be \[height, width, 1\|3\]"),
    ({"input_shape": [8, True, 1]}, r"'input_shape' must be \[height, width, 1\|3\]"),
    ({"input_shape": [8.0, 8, 1]}, r"'input_shape' must be \[height, width, 1\|3\]"),
    ({"model_sha256": "AB" * 32}, "'model_sha256' must be 64 hex digits"),
    ({"model_sha256": "ab" * 31}, "'model_sha256' must be 64 hex digits"),
    ({"model_sha256": None}, "'model_sha256' must be 64 hex digits"),
]


@pytest.mark.parametrize(("change", "message"), BAD_METADATA)
def test_each_metadata_field_is_checked(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    folder = export_folder(tmp_path / "m", **change)
    with pytest.raises(HpoError, match=message) as err:
        read_metadata(folder)
    assert str(err.value).startswith(str(folder / METADATA_FILE)), "the message names the file"


def test_unreadable_or_missing_metadata(tmp_path: Path) -> None:
    with pytest.raises(HpoError, match="does not exist or is not a folder"):
        read_metadata(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HpoError, match=f"not an hpo export folder: no {METADATA_FILE}"):
        read_metadata(tmp_path / "empty")
    folder = export_folder(tmp_path / "m")
    (folder / METADATA_FILE).write_text("{not json")
    with pytest.raises(HpoError, match=r"not readable JSON \(JSONDecodeError\)"):
        read_metadata(folder)
    (folder / METADATA_FILE).write_text("[1, 2]")
    with pytest.raises(HpoError, match="not hpo model metadata"):
        read_metadata(folder)


def test_oversized_metadata_is_refused_unread(tmp_path: Path) -> None:
    folder = export_folder(tmp_path / "m")
    with (folder / METADATA_FILE).open("r+b") as fh:
        fh.truncate(16 * 1024 * 1024 + 1)
    with pytest.raises(HpoError, match="too large to be hpo model metadata"):
        read_metadata(folder)


def test_a_changed_or_replaced_model_file_is_refused(tmp_path: Path) -> None:
    folder = export_folder(tmp_path / "m")
    info = read_metadata(folder)
    assert verify_model_file(info) == (folder / MODEL_FILE).read_bytes()
    tiny_model(folder / MODEL_FILE)  # another model: same shape, new weights
    with pytest.raises(HpoError, match="does not match") as err:
        verify_model_file(info)
    assert info.sha256[:16] in str(err.value) and "refused" in str(err.value)


def test_a_symlinked_or_missing_model_file_is_refused(tmp_path: Path) -> None:
    folder = export_folder(tmp_path / "m")
    info = read_metadata(folder)
    elsewhere = tmp_path / "elsewhere.keras"
    (folder / MODEL_FILE).rename(elsewhere)
    with pytest.raises(HpoError, match="missing"):
        verify_model_file(info)
    (folder / MODEL_FILE).symlink_to(elsewhere)  # same bytes, but not a plain file
    with pytest.raises(HpoError, match="as a plain file"):
        verify_model_file(info)


def test_safe_mode_refuses_a_lambda(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(HpoError, match="cannot be loaded in Keras safe mode") as err:
        load_model_safely(path, shown=Path("shown.keras"))
    assert str(err.value).startswith("shown.keras: ") and "\n" not in str(err.value)
    assert "Lambda" in str(err.value), "the message should carry Keras' reason"


@pytest.mark.parametrize(
    ("shape", "classes"), [((8, 8, 3), 3), ((8, 8, 1), 4)], ids=["input", "classes"]
)
def test_a_model_that_does_not_fit_its_metadata_is_refused(
    tmp_path: Path, shape: tuple[int, int, int], classes: int
) -> None:
    folder = export_folder(tmp_path / "m")
    tiny_model(folder / MODEL_FILE, shape, classes)
    meta = json.loads((folder / METADATA_FILE).read_text())
    meta["model_sha256"] = sha256_file(folder / MODEL_FILE)
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(HpoError, match=r"but model\.json says") as err:
        load_exported(folder)
    assert f"model takes {shape} and gives {classes} classes" in str(err.value)


@pytest.mark.parametrize(
    ("shape", "names"),
    [((8, 12, 1), ["benign", "malignant"]), ((10, 6, 3), ["a", "b", "c"])],
    ids=["two-classes-non-square", "rgb"],
)
def test_binary_rgb_and_non_square_exports_load(
    tmp_path: Path, shape: tuple[int, int, int], names: list[str]
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    tiny_model(folder / MODEL_FILE, shape, len(names))
    meta = {
        "format": FORMAT,
        "class_names": names,
        "input_shape": list(shape),
        "model_sha256": sha256_file(folder / MODEL_FILE),
    }
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    model, info = load_exported(folder)
    assert info.input_shape == shape and info.class_names == names
    assert model.output_shape == (None, len(names))


def test_metadata_of_exactly_the_size_limit_is_read(tmp_path: Path) -> None:
    folder = export_folder(tmp_path / "m")
    text = (folder / METADATA_FILE).read_text()
    limit = 16 * 1024 * 1024
    (folder / METADATA_FILE).write_text(text + " " * (limit - len(text.encode())))
    assert (folder / METADATA_FILE).stat().st_size == limit
    assert read_metadata(folder).class_names == ["a", "b", "c"]


def test_refusals_name_both_digests_and_the_keras_reason(tmp_path: Path) -> None:
    folder = export_folder(tmp_path / "m")
    info = read_metadata(folder)
    (folder / MODEL_FILE).write_bytes(b"not a zip at all")
    actual = hashlib.sha256(b"not a zip at all").hexdigest()
    with pytest.raises(HpoError) as err:
        verify_model_file(info)
    assert f"sha256 {actual[:16]}… does not match {info.sha256[:16]}… recorded" in str(err.value)

    # Bytes that match their recorded sha256 but are no Keras file: the message names the
    # folder's file (not the private copy that was loaded) and Keras' own first line.
    meta = json.loads((folder / METADATA_FILE).read_text())
    meta["model_sha256"] = actual
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(HpoError) as err:
        load_exported(folder)
    message = str(err.value)
    assert message.startswith(f"{folder / MODEL_FILE}: cannot be loaded in Keras safe mode (")
    assert message.endswith(")") and len(message.split("(", 1)[1]) > 10, message
