"""What the audit looks at: the images of a study file's dataset, split as training splits them.

A study file is audited with its own ``dataset`` section, so the audit sees
the very partition ``hpo.data`` builds; a bare folder or ``.npz`` file is
audited with the default split settings (or the splits the file gives). For
class folders, each file's bytes, pixel size and mode are read too: those are
lost once images are decoded to one size and channel count.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hpo.errors import ConfigError, DataError

if TYPE_CHECKING:
    from hpo.config import DatasetSection
    from hpo.data import Dataset

SPLITS = ("train", "val", "test")
FOLDER_SIDE = 64  # a bare folder is audited at 64x64 RGB: plenty for hashes and thumbnails
STUDY_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class FileInfo:
    """What the file on disk says about an image (class folders only)."""

    sha256: str
    width: int
    height: int
    mode: str


@dataclass
class AuditImages:
    """The audited images in split order (train, val, test), one row per image."""

    target: str
    source: str
    class_names: list[str]
    parts: list[np.ndarray]  # decoded uint8 images of each split, as training sees them
    split: np.ndarray  # (n,) split name of each image
    label: np.ndarray  # (n,) class index
    ids: list[str]  # file path under the dataset folder, or "<split>[<index>]"
    files: list[FileInfo | None]
    given_splits: bool
    settings: dict[str, object]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, i: int) -> np.ndarray:
        for part in self.parts:
            if i < len(part):
                one: np.ndarray = part[i]
                return one
            i -= len(part)
        raise IndexError(i)


def dataset_section(target: Path) -> tuple[DatasetSection, str]:
    """The dataset section to audit for ``target`` and what the target is."""
    from hpo.config import DatasetSection, load_config

    if target.is_file() and target.suffix.lower() in STUDY_SUFFIXES:
        config = load_config(target)
        if getattr(config, "dataset", None) is None:
            raise ConfigError(f"{target}: the study file has no dataset section to audit")
        return config.dataset, "study file"
    if target.is_file() and target.suffix.lower() == ".npz":
        h, w, channels = _npz_shape(target)
        size = [min(max(h, 8), 1024), min(max(w, 8), 1024)]
        section = {"source": "npz", "path": str(target), "image_size": size, "channels": channels}
        return DatasetSection.model_validate(section), "npz file"
    if target.is_dir():
        section = {"source": "directory", "path": str(target), "image_size": FOLDER_SIDE}
        return DatasetSection.model_validate(section), "class folders"
    if not target.exists():
        raise ConfigError(f"{target}: no such file or folder")
    raise ConfigError(
        f"{target}: not a study file (.yaml, .yml), a folder of class folders or a .npz file"
    )


def _npz_shape(path: Path) -> tuple[int, int, int]:
    """(height, width, channels) of the file's images, so the audit sees them unresized."""
    shape: list[int] = []
    try:
        with np.load(path, allow_pickle=False) as npz:
            shape = list(npz["train_images"].shape) if "train_images" in npz.files else []
    except Exception:  # hpo.data reports what is wrong with the file
        return 28, 28, 1
    if len(shape) < 3:
        return 28, 28, 1
    _, height, width, *rest = shape
    channels = 1 if not rest or rest[0] == 1 else 3
    return int(height), int(width), channels


def _load(section: DatasetSection) -> tuple[Dataset, list[str]]:
    """The dataset split as training splits it; ``duplicates: error`` must not stop the audit."""
    from hpo.data import load_dataset

    notes: list[str] = []
    if section.duplicates == "error":
        return load_dataset(section.model_copy(update={"duplicates": "ignore"})), notes
    try:
        return load_dataset(section), notes
    except DataError as exc:
        if section.duplicates != "group" or "duplicates" not in str(exc):
            raise
        notes.append(str(exc))
        return load_dataset(section.model_copy(update={"duplicates": "ignore"})), notes


def _file_info(path: Path) -> FileInfo | None:
    from PIL import Image

    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:  # the header only: no pixels are decoded
            width, height = img.size
            mode = img.mode
    except Exception:  # unreadable files were skipped or refused by hpo.data already
        return None
    return FileInfo(hashlib.sha256(data).hexdigest(), int(width), int(height), mode)


def from_dataset(
    dataset: Dataset, *, target: str, root: Path | None = None, given_splits: bool = False
) -> AuditImages:
    """Audit rows for a decoded dataset; ``root`` (class folders) adds file facts."""
    parts = [dataset.split(s).x for s in SPLITS]
    split = np.concatenate([np.full(len(dataset.split(s)), s) for s in SPLITS])
    label = np.concatenate([dataset.split(s).y for s in SPLITS]).astype(np.int64)
    ids: list[str] = []
    for s in SPLITS:
        part = dataset.split(s)
        if part.ids is not None:
            ids.extend(str(f) for f in part.ids)
        else:
            ids.extend(f"{s}[{i}]" for i in range(len(part)))
    files: list[FileInfo | None] = [None] * len(ids)
    if root is not None and dataset.source == "directory":
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
            files = list(pool.map(_file_info, (root / f for f in ids)))
    return AuditImages(
        target=target,
        source=dataset.source,
        class_names=list(dataset.class_names),
        parts=parts,
        split=split,
        label=label,
        ids=ids,
        files=files,
        given_splits=given_splits,
        settings={},
        warnings=list(dataset.warnings),
    )


def load_images(target: str | Path) -> AuditImages:
    """Decode and split what ``target`` names (study file, class folders or .npz)."""
    path = Path(target)
    section, kind = dataset_section(path)
    try:
        dataset, notes = _load(section)
    except DataError as exc:
        if kind == "study file" and str(exc).startswith("dataset"):
            raise DataError(f"{target}: {exc}") from None  # name the file, as `hpo run` does
        raise
    root = Path(section.path) if section.source == "directory" and section.path else None
    given = section.source == "npz" and _npz_has_all_splits(Path(str(section.path)))
    images = from_dataset(dataset, target=str(target), root=root, given_splits=given)
    images.settings = {
        "audited": kind,
        "source": section.source,
        "path": section.path,
        "image_size": list(section.size),
        "channels": section.channels,
        "split": "given by the file"
        if images.given_splits
        else (
            f"val {section.val_fraction}, test {section.test_fraction}, seed {section.split_seed}"
            + (f", groups {section.groups}" if section.groups else "")
            + (", duplicates grouped" if section.duplicates == "group" and not notes else "")
        ),
        "duplicates": section.duplicates,
    }
    images.warnings.extend(notes)
    return images


def _npz_has_all_splits(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return all(f"{s}_images" in npz.files for s in SPLITS)
    except Exception:
        return False
