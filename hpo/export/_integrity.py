"""Exported model folders: fixed file names, sha256 and safe loading.

A ``.keras`` file is a zip whose config names the classes Keras builds; a
crafted one can try to run code when loaded. The folder's ``model.json``
records the model file's sha256, so a file changed or swapped after export
is refused before Keras reads a byte of it, and loading always runs in
Keras safe mode (no lambdas, only registered classes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError

if TYPE_CHECKING:
    import keras

MODEL_FILE = "model.keras"
METADATA_FILE = "model.json"
CARD_FILE = "model_card.html"
FORMAT = "hpo-model/1"

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_METADATA_BYTES = 16 * 1024 * 1024


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large backbones stay cheap."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write next to the target, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ModelInfo:
    """What ``predict`` needs from ``model.json``, checked for shape and type."""

    folder: Path
    class_names: list[str]
    input_shape: tuple[int, int, int]
    sha256: str
    metadata: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILE


def read_metadata(folder: str | Path) -> ModelInfo:
    """Read and validate ``model.json`` of an export folder."""
    root = Path(folder)
    meta_path = root / METADATA_FILE
    if not root.is_dir():
        raise HpoError(f"model folder '{root}' does not exist or is not a folder")
    if not meta_path.is_file():
        raise HpoError(f"'{root}' is not an hpo export folder: no {METADATA_FILE}")
    if meta_path.stat().st_size > _MAX_METADATA_BYTES:
        raise HpoError(f"{meta_path}: too large to be hpo model metadata, refused")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HpoError(f"{meta_path}: not readable JSON ({exc.__class__.__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise HpoError(f"{meta_path}: not hpo model metadata (expected format '{FORMAT}')")
    names = meta.get("class_names")
    shape = meta.get("input_shape")
    sha = meta.get("model_sha256")
    if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
        raise HpoError(f"{meta_path}: 'class_names' must list at least two names")
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
        and shape[2] in (1, 3)
    ):
        raise HpoError(f"{meta_path}: 'input_shape' must be [height, width, 1|3]")
    if not (isinstance(sha, str) and _SHA_RE.match(sha)):
        raise HpoError(f"{meta_path}: 'model_sha256' must be 64 hex digits")
    return ModelInfo(root, list(names), (shape[0], shape[1], shape[2]), sha, meta)


def verify_model_file(info: ModelInfo) -> bytes:
    """The model file's bytes, if their sha256 is the one recorded at export."""
    path = info.model_path
    if path.is_symlink() or not path.is_file():
        raise HpoError(f"{path}: missing (an export folder holds {MODEL_FILE} as a plain file)")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != info.sha256:
        raise HpoError(
            f"{path}: sha256 {actual[:16]}… does not match {info.sha256[:16]}… recorded in "
            f"{METADATA_FILE}; the file was changed or replaced after export, refused"
        )
    return data


def load_model_safely(path: Path, *, shown: Path | None = None) -> keras.Model:
    """Keras safe mode, our registered layers only; any failure is one clear line."""
    import keras

    import hpo.models  # noqa: F401  registers ImagePreprocessing for deserialization

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise HpoError(
            f"{shown or path}: cannot be loaded in Keras safe mode "
            f"({exc.__class__.__name__}: {first})"
        ) from None


def load_verified(info: ModelInfo, data: bytes) -> keras.Model:
    """Load the very bytes that were hashed, from a private copy.

    Loading the folder's file after hashing it would leave a window in which
    it could be swapped; a copy in a fresh private folder closes it.
    """
    with tempfile.TemporaryDirectory(prefix="hpo-model-") as tmp:
        private = Path(tmp) / MODEL_FILE
        private.write_bytes(data)
        model = load_model_safely(private, shown=info.model_path)
    in_shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    out_units = model.output_shape[-1] if not isinstance(model.output_shape, list) else None
    if in_shape != info.input_shape or out_units != len(info.class_names):
        raise HpoError(
            f"{info.model_path}: model takes {in_shape} and gives {out_units} classes, but "
            f"{METADATA_FILE} says {info.input_shape} and {len(info.class_names)}; refused"
        )
    return model


def load_exported(folder: str | Path) -> tuple[keras.Model, ModelInfo]:
    """Check metadata and sha256, then load safely; the model must fit its metadata."""
    info = read_metadata(folder)
    return load_verified(info, verify_model_file(info)), info
