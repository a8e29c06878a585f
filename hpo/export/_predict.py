"""``hpo predict``: class probabilities for image files from an export folder.

Images go through ``hpo.data``'s own decoder with the size and channels
recorded at export, so a file is seen exactly as training saw it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpo.data import IMAGE_SUFFIXES
from hpo.errors import DataError, HpoError


@dataclass(frozen=True)
class Predictions:
    files: list[Path]
    class_names: list[str]
    proba: np.ndarray  # (n, k)

    @property
    def predicted(self) -> list[str]:
        return [self.class_names[int(i)] for i in self.proba.argmax(axis=1)]

    def rows(self) -> list[dict[str, object]]:
        return [
            {
                "file": str(f),
                "predicted": name,
                "probabilities": {
                    c: round(float(p), 6) for c, p in zip(self.class_names, row, strict=True)
                },
            }
            for f, name, row in zip(self.files, self.predicted, self.proba, strict=True)
        ]

    def to_json(self) -> str:
        return json.dumps(self.rows(), indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "predicted", *self.class_names])
        for f, name, row in zip(self.files, self.predicted, self.proba, strict=True):
            writer.writerow([str(f), name, *(f"{float(p):.6f}" for p in row)])
        return buf.getvalue()


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files given directly, or found (recursively, sorted) in given folders."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            inside = sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
            )
            if not inside:
                raise HpoError(f"'{p}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend(inside)
        elif p.is_file():
            found.append(p)
        else:
            raise HpoError(f"'{p}' does not exist")
    if not found:
        raise HpoError("no images given")
    return found


def decode_images(files: Sequence[Path], input_shape: tuple[int, int, int]) -> np.ndarray:
    """(n, h, w, c) uint8, decoded as ``hpo.data`` decodes training images."""
    from hpo.data import decode_file

    h, w, c = input_shape
    out = np.empty((len(files), h, w, c), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            out[i] = decode_file(f, (h, w), c)
        except Exception as exc:  # PIL raises many types for a bad file
            raise DataError(
                f"'{f}' is not a readable image ({exc.__class__.__name__}: {str(exc)[:80]})"
            ) from None
    return out


def predict_files(model_dir: str | Path, paths: Iterable[str | Path]) -> Predictions:
    """Verify and load the exported model, then classify every image."""
    from hpo.export._integrity import load_verified, read_metadata, verify_model_file

    # Cheap checks first: a tampered model or a bad image is refused before
    # TensorFlow starts.
    info = read_metadata(model_dir)
    verified = verify_model_file(info)
    files = collect_images(paths)
    x = decode_images(files, info.input_shape)
    from hpo.training import configure_backend, predict_proba

    configure_backend()  # KERAS_BACKEND, else TensorFlow: a .keras file loads on any
    model = load_verified(info, verified)
    return Predictions(files, info.class_names, predict_proba(model, x))
