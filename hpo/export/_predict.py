"""``hpo predict``: class probabilities for image files from an export folder.

Images go through ``hpo.data``'s own decoder with the size and channels
recorded at export, so a file is seen exactly as training saw it. Each row
says whether the image is one of the study's own (``in_split``: train, val,
test, or ``-``), by the content hashes stored at export (``_splits``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hpo.data import IMAGE_SUFFIXES
from hpo.errors import DataError, HpoError
from hpo.export._integrity import METADATA_FILE


@dataclass(frozen=True)
class Predictions:
    files: list[Path]
    class_names: list[str]
    proba: np.ndarray  # (n, k)
    in_split: list[str] = field(default_factory=list)  # train/val/test, "-" none, "?" unknown
    split_note: str | None = None  # why in_split is unknown, when it is
    temperature: float | None = None  # applied to the model's output, when exported calibrated

    def split_of(self, i: int) -> str:
        return self.in_split[i] if i < len(self.in_split) else "?"

    @property
    def predicted(self) -> list[str]:
        return [self.class_names[int(i)] for i in self.proba.argmax(axis=1)]

    def rows(self) -> list[dict[str, object]]:
        return [
            {
                "file": str(f),
                "predicted": name,
                "in_split": self.split_of(i),
                "probabilities": {
                    c: round(float(p), 6) for c, p in zip(self.class_names, row, strict=True)
                },
                "calibration": (
                    f"temperature scaling, T = {self.temperature:.6g}"
                    if self.temperature is not None
                    else "none"
                ),
            }
            for i, (f, name, row) in enumerate(
                zip(self.files, self.predicted, self.proba, strict=True)
            )
        ]

    def to_json(self) -> str:
        return json.dumps(self.rows(), indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "predicted", "in_split", *self.class_names])
        for i, (f, name, row) in enumerate(
            zip(self.files, self.predicted, self.proba, strict=True)
        ):
            writer.writerow([str(f), name, self.split_of(i), *(f"{float(p):.6f}" for p in row)])
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
    from hpo.export._splits import lookup, read_index

    # Cheap checks first: a tampered model or a bad image is refused before
    # TensorFlow starts.
    info = read_metadata(model_dir)
    verified = verify_model_file(info)
    files = collect_images(paths)
    x = decode_images(files, info.input_shape)
    index, note = read_index(info)
    in_split = lookup(index, x)
    from hpo.training import configure_backend, predict_proba

    configure_backend()  # KERAS_BACKEND, else TensorFlow: a .keras file loads on any
    model = load_verified(info, verified)
    proba = predict_proba(model, x)
    temperature = stored_temperature(info.metadata)
    if temperature is not None:
        from hpo.export._calibration import apply_temperature

        proba = apply_temperature(proba, temperature)
    return Predictions(files, info.class_names, proba, in_split, note, temperature)


def stored_temperature(meta: dict[str, object]) -> float | None:
    """The temperature recorded by ``hpo export --calibrate``, checked; None if not calibrated."""
    t = meta.get("temperature")
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < float(t) < float("inf"):
        raise HpoError(f"{METADATA_FILE}: 'temperature' must be a positive number, got {t!r}")
    return float(t)
