"""Which split, if any, an image to classify came from.

At export the content hash of every image of the study's train, val and test
splits goes into ``splits.json``; ``hpo predict`` hashes each image it
classifies the same way and says whether the model has seen it (train),
was chosen on it (val) or was tested on it (test). A prediction on such an
image is no evidence of how the model does on new cases.

The hash is SHA-256 of the *decoded* image: its uint8 pixels at the model's
input shape (height x width x channels, row-major), as training and
``predict`` both decode it, cut to the first 32 hex digits (128 bits). So
the same picture matches whatever its file name or folder, and across
lossless formats (PNG, BMP, TIFF); a re-encoded JPEG, a crop or a resize
from another original size does not. It works for ``.npz`` datasets too,
which have no files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.data import SPLITS

if TYPE_CHECKING:
    from hpo.data import Dataset
    from hpo.export._integrity import ModelInfo

SPLITS_FILE = "splits.json"
FORMAT = "hpo-splits/1"
HASH = "sha256 of the decoded uint8 pixels at the input shape (h, w, c, row-major), 32 hex digits"
_HEX = 32
NOT_IN_SPLIT = "-"
UNKNOWN = "?"


def image_hash(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()[:_HEX]


def splits_document(dataset: Dataset) -> bytes:
    """``splits.json``: the sorted hashes of each split's images."""
    doc: dict[str, Any] = {"format": FORMAT, "hash": HASH, "input_shape": list(dataset.input_shape)}
    for name in SPLITS:
        doc[name] = sorted({image_hash(img) for img in dataset.split(name).x})
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode("utf-8")


def read_index(info: ModelInfo) -> tuple[dict[str, list[str]] | None, str | None]:
    """(hash -> splits, None), or (None, why the lookup is not possible)."""
    from hpo.export._integrity import sha256_file

    record = info.metadata.get("splits")
    path = info.folder / SPLITS_FILE
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return None, f"this export has no {SPLITS_FILE} (made by an older hpo)"
    if not path.is_file():
        return None, f"{path} is missing"
    if sha256_file(path) != record["sha256"]:
        return None, f"{path} does not match the sha256 recorded in model.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path}: not readable JSON ({exc.__class__.__name__})"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None, f"{path}: not an hpo splits file (expected format '{FORMAT}')"
    index: dict[str, list[str]] = {}
    for name in SPLITS:
        for h in doc.get(name) or []:
            index.setdefault(str(h), []).append(name)
    return index, None


def lookup(index: dict[str, list[str]] | None, images: Iterable[np.ndarray]) -> list[str]:
    """``train``, ``val``, ``test`` (joined by ``+`` if several), ``-`` if none, ``?`` unknown."""
    if index is None:
        return [UNKNOWN for _ in images]
    return ["+".join(index.get(image_hash(img), [])) or NOT_IN_SPLIT for img in images]
