"""Datasets: class-folder directories, MedMNIST-style ``.npz`` and the digits demo.

Images are decoded and resized once per process into uint8 arrays; trials
then only build tf.data pipelines over those arrays. Splits are stratified
(and group-aware when a ``file,group`` CSV is given) with a fixed seed, so
every worker on every host sees the same train/validation/test partition.

(Over 400 lines: three source readers sharing one decode-and-split contract.)
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.errors import DataError

if TYPE_CHECKING:
    from hpo.config import DatasetSection

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (n, height, width, channels) uint8
    y: np.ndarray  # (n,) int64 class indices
    ids: np.ndarray | None = None  # relative file names, for directory sources

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def counts(self, n_classes: int) -> list[int]:
        return [int(c) for c in np.bincount(self.y, minlength=n_classes)]


@dataclass(frozen=True)
class Dataset:
    class_names: list[str]
    train: Split
    val: Split
    test: Split
    sha256: str
    source: str
    warnings: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w, c = self.train.x.shape[1:]
        return int(h), int(w), int(c)

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def fingerprint(self) -> dict[str, Any]:
        """Class counts and content hash, stored on the study to trace a result."""
        split_counts = {
            name: dict(zip(self.class_names, self.split(name).counts(self.n_classes), strict=True))
            for name in SPLITS
        }
        totals = Counter[str]()
        for counts in split_counts.values():
            totals.update(counts)
        return {
            "sha256": self.sha256,
            "source": self.source,
            "class_names": list(self.class_names),
            "class_counts": {c: int(totals[c]) for c in self.class_names},
            "split_counts": split_counts,
            "n_images": int(sum(totals.values())),
            "input_shape": list(self.input_shape),
        }


# --------------------------------------------------------------------------
# image decoding


def _to_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    arr = images.astype(np.float64)
    hi = float(arr.max()) if arr.size else 1.0
    if hi <= 1.0:
        arr = arr * 255.0
    elif hi > 255.0:
        arr = arr / hi * 255.0
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def resize_array(images: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """(n, h, w[, c]) images of any dtype -> (n, size[0], size[1], channels) uint8."""
    from PIL import Image

    images = _to_uint8(np.asarray(images))
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise DataError(f"images must be (n, h, w) or (n, h, w, 1|3|4), got {images.shape}")
    out = np.empty((images.shape[0], size[0], size[1], channels), dtype=np.uint8)
    mode = "L" if channels == 1 else "RGB"
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img[..., :3])
        pil = pil.convert(mode)
        if pil.size != (size[1], size[0]):
            pil = pil.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(pil)
        out[i] = arr[..., None] if channels == 1 else arr
    return out


def decode_file(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image file as training sees it; ``hpo export``'s predict decodes through here too."""
    from PIL import Image

    with Image.open(path) as opened:
        opened.load()
        img = opened.convert("L" if channels == 1 else "RGB")
        if img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr


# --------------------------------------------------------------------------
# sources


@dataclass
class _Raw:
    """Decoded images before splitting; ``fixed`` holds given splits (npz)."""

    class_names: list[str]
    x: np.ndarray
    y: np.ndarray
    sha256: str
    files: list[str] | None = None
    fixed: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    warnings: list[str] = field(default_factory=list)


def _load_digits(cfg: DatasetSection) -> _Raw:
    from sklearn.datasets import load_digits

    digits = load_digits()
    raw = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    y = digits.target.astype(np.int64)
    sha = hashlib.sha256(raw.tobytes() + y.tobytes()).hexdigest()
    keep = _subsample(raw, y, cfg.max_per_class, cfg.split_seed)
    x = resize_array(raw[keep], cfg.size, cfg.channels)
    return _Raw([str(i) for i in range(10)], x, y[keep], sha)


def _list_class_folders(root: Path) -> list[tuple[str, list[Path]]]:
    if not root.exists():
        raise DataError(f"dataset.path: folder '{root}' does not exist")
    if not root.is_dir():
        raise DataError(f"dataset.path: '{root}' is not a folder of class sub-folders")
    classes: list[tuple[str, list[Path]]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            f
            for f in sub.rglob("*")
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
        )
        if files:
            classes.append((sub.name, files))
    if not classes:
        raise DataError(
            f"dataset.path: '{root}' has no class sub-folders with images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return classes


def _subsample(
    items: Sequence[Any], labels: np.ndarray, max_per_class: int | None, seed: int
) -> np.ndarray:
    idx = np.arange(len(labels))
    if not max_per_class:
        return idx
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for k in np.unique(labels):
        members = idx[labels == k]
        if len(members) > max_per_class:
            members = np.sort(rng.choice(members, max_per_class, replace=False))
        keep.append(members)
    return np.sort(np.concatenate(keep))


def _load_directory(cfg: DatasetSection) -> _Raw:
    assert cfg.path is not None
    root = Path(cfg.path)
    classes = _list_class_folders(root)
    names = [name for name, _ in classes]
    files = [f for _, fs in classes for f in fs]
    labels = np.array([k for k, (_, fs) in enumerate(classes) for _ in fs], dtype=np.int64)
    keep = _subsample(files, labels, cfg.max_per_class, cfg.split_seed)
    files = [files[i] for i in keep]
    labels = labels[keep]

    size, channels = cfg.size, cfg.channels
    digest = hashlib.sha256()
    decoded: list[np.ndarray | None] = [None] * len(files)
    errors: list[tuple[Path, str]] = []

    def work(i: int) -> tuple[int, np.ndarray | None, bytes, str | None]:
        path = files[i]
        try:
            data = path.read_bytes()
        except OSError as exc:
            return i, None, b"", exc.__class__.__name__
        try:
            return i, decode_file(path, size, channels), data, None
        except Exception as exc:  # PIL raises many types for bad files
            return i, None, data, f"{exc.__class__.__name__}: {str(exc)[:80]}"

    workers = min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, arr, data, err in pool.map(work, range(len(files))):
            rel = files[i].relative_to(root).as_posix()
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            if err is not None:
                errors.append((files[i], err))
            else:
                decoded[i] = arr

    warnings: list[str] = []
    if errors:
        listed = "; ".join(f"{p} ({why})" for p, why in errors[:3])
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        if cfg.on_corrupt == "error":
            raise DataError(
                f"{len(errors)} unreadable image(s): {listed}{more}; "
                "fix or remove them, or set dataset.on_corrupt: skip"
            )
        msg = f"skipped {len(errors)} unreadable image(s): {listed}{more}"
        log.warning(msg)
        warnings.append(msg)
    ok = [i for i, arr in enumerate(decoded) if arr is not None]
    if not ok:
        raise DataError(f"dataset.path: no readable images in '{root}'")
    x = np.stack([decoded[i] for i in ok])  # type: ignore[misc]
    rel_files = [files[i].relative_to(root).as_posix() for i in ok]
    return _Raw(names, x, labels[ok], digest.hexdigest(), files=rel_files, warnings=warnings)


def _load_npz(cfg: DatasetSection) -> _Raw:
    assert cfg.path is not None
    path = Path(cfg.path)
    if not path.is_file():
        raise DataError(f"dataset.path: file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise DataError(f"dataset.path: '{path}' holds pickled objects, refused ({exc})") from None
    except Exception as exc:
        raise DataError(f"dataset.path: '{path}' is not a readable .npz ({exc})") from None
    if "train_images" not in arrays or "train_labels" not in arrays:
        raise DataError(
            f"dataset.path: '{path}' needs arrays 'train_images' and 'train_labels' "
            f"(found: {', '.join(sorted(arrays)) or 'none'})"
        )
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())

    def labels_of(key: str) -> np.ndarray:
        lab = np.asarray(arrays[key])
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        if lab.ndim != 1:
            raise DataError(f"dataset.path: '{key}' must be one label per image, got {lab.shape}")
        if not np.issubdtype(lab.dtype, np.integer):
            raise DataError(f"dataset.path: '{key}' must hold integer class indices")
        return lab.astype(np.int64)

    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in SPLITS:
        if f"{split}_images" in arrays:
            if f"{split}_labels" not in arrays:
                raise DataError(f"dataset.path: '{path}' has '{split}_images' but no labels")
            imgs = arrays[f"{split}_images"]
            labs = labels_of(f"{split}_labels")
            if len(imgs) != len(labs):
                raise DataError(
                    f"dataset.path: {split}_images has {len(imgs)} images "
                    f"but {split}_labels has {len(labs)}"
                )
            keep = _subsample(imgs, labs, cfg.max_per_class, cfg.split_seed)
            parts[split] = (resize_array(imgs[keep], cfg.size, cfg.channels), labs[keep])
    n_classes = int(max(int(lab.max()) for _, lab in parts.values() if len(lab)) + 1)
    if "class_names" in arrays:
        names = [str(n) for n in np.asarray(arrays["class_names"]).tolist()]
        if len(names) < n_classes:
            raise DataError(
                f"dataset.path: class_names lists {len(names)} names for {n_classes} classes"
            )
    else:
        names = [str(i) for i in range(n_classes)]
    x, y = parts["train"]
    fixed = parts if set(parts) == set(SPLITS) else None
    if fixed is None and len(parts) > 1:
        # Only some splits given: pool them and split ourselves, keeping it simple to audit.
        x = np.concatenate([p[0] for p in parts.values()])
        y = np.concatenate([p[1] for p in parts.values()])
    return _Raw(names, x, y, digest.hexdigest(), fixed=fixed)


# --------------------------------------------------------------------------
# splitting


def _read_groups(csv_path: Path, files: Iterable[str]) -> np.ndarray:
    if not csv_path.is_file():
        raise DataError(f"dataset.groups: file '{csv_path}' does not exist")
    mapping: dict[str, str] = {}
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"file", "group"} <= set(reader.fieldnames):
            raise DataError(f"dataset.groups: '{csv_path}' needs a header with 'file,group'")
        for row in reader:
            mapping[Path(row["file"]).as_posix()] = row["group"]
    files = list(files)
    bare = Counter(Path(f).name for f in files)
    groups: list[str] = []
    missing: list[str] = []
    for f in files:
        g = mapping.get(f)
        if g is None and Path(f).name in mapping:
            if bare[Path(f).name] > 1:  # which subject would be a guess: refuse
                raise DataError(
                    f"dataset.groups: '{Path(f).name}' in '{csv_path}' matches "
                    f"{bare[Path(f).name]} images in different folders; give paths "
                    f"relative to the dataset folder, e.g. '{f}'"
                )
            g = mapping[Path(f).name]
        if g is None:
            missing.append(f)
        groups.append(g or "")
    if missing:
        raise DataError(
            f"dataset.groups: {len(missing)} image(s) have no group in '{csv_path}', "
            f"e.g. '{missing[0]}'"
        )
    return np.array(groups)


def _stratified_split(
    y: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held_out), held_out ~ fraction of y, stratified by class."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    idx = np.arange(len(y))
    if groups is None:
        counts = np.bincount(y)
        stratify = y if counts[counts > 0].min() >= 2 else None
        rest, held = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
        return np.sort(rest), np.sort(held)
    n_splits = max(2, round(1.0 / fraction))
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise DataError(
            f"dataset.groups: {n_groups} groups are too few for a {fraction:.0%} held-out split"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    rest, held = next(splitter.split(idx, y, groups))
    return np.sort(rest), np.sort(held)


def load_dataset(cfg: DatasetSection) -> Dataset:
    """Decode, resize and split the study's dataset (cached per process)."""
    key = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    if cfg.source == "digits":
        raw = _load_digits(cfg)
    elif cfg.source == "directory":
        raw = _load_directory(cfg)
    else:
        raw = _load_npz(cfg)
    dataset = _split(cfg, raw)
    _check(dataset, cfg)
    _CACHE.clear()  # one dataset per worker process is the common case; keep memory flat
    _CACHE[key] = dataset
    return dataset


_CACHE: dict[str, Dataset] = {}


def clear_cache() -> None:
    """Forget the datasets decoded in this process; the next load decodes again."""
    _CACHE.clear()


def _split(cfg: DatasetSection, raw: _Raw) -> Dataset:
    if raw.fixed is not None:
        parts = {k: Split(*v) for k, v in raw.fixed.items()}
        if cfg.duplicates != "ignore":
            from hpo.audit import check_given_splits

            check_given_splits(cfg, [parts[name].x for name in SPLITS])
        return Dataset(
            raw.class_names,
            parts["train"],
            parts["val"],
            parts["test"],
            raw.sha256,
            cfg.source,
            raw.warnings,
        )
    y = raw.y
    present = np.unique(y)
    if len(present) < 2:
        only = raw.class_names[int(present[0])] if len(present) else "none"
        raise DataError(
            f"dataset: only one class ('{only}') found; a classifier needs at least two"
        )
    groups = None
    if cfg.groups:
        if raw.files is None:
            raise DataError("dataset.groups applies only to source 'directory'")
        groups = _read_groups(Path(cfg.groups), raw.files)
    duplicates = None
    if cfg.duplicates != "ignore":
        from hpo.audit import duplicate_labels, merge_labels

        duplicates = duplicate_labels([raw.x])
        if cfg.duplicates == "group" and len(np.unique(duplicates)) < len(y):
            # Copies of one picture become one group, joined with its subject's group if any.
            groups = duplicates if groups is None else merge_labels(groups, duplicates)
    min_count = np.bincount(y)[present].min()
    if groups is None and min_count < 3:
        small = raw.class_names[int(present[np.bincount(y)[present].argmin()])]
        raise DataError(
            f"dataset: class '{small}' has {min_count} image(s); each class needs at least 3 "
            "for train/validation/test splits"
        )
    rest, test = _stratified_split(y, cfg.test_fraction, cfg.split_seed, groups)
    val_frac = cfg.val_fraction / (1.0 - cfg.test_fraction)
    sub_groups = None if groups is None else groups[rest]
    tr, va = _stratified_split(y[rest], val_frac, cfg.split_seed + 1, sub_groups)
    train, val = rest[tr], rest[va]
    if duplicates is not None and cfg.duplicates == "error":
        from hpo.audit import refuse_leaks

        refuse_leaks(duplicates, [train, val, test], "run 'hpo audit STUDY_FILE' to see them")
    files = None if raw.files is None else np.array(raw.files)

    def part(idx: np.ndarray) -> Split:
        return Split(raw.x[idx], y[idx], None if files is None else files[idx])

    return Dataset(
        raw.class_names,
        part(train),
        part(val),
        part(test),
        raw.sha256,
        cfg.source,
        raw.warnings,
    )


def _check(ds: Dataset, cfg: DatasetSection) -> None:
    for name in SPLITS:
        if len(ds.split(name)) == 0:
            raise DataError(f"dataset: the {name} split is empty")
    train_classes = set(np.unique(ds.train.y).tolist())
    if len(train_classes) < 2:
        raise DataError("dataset: the training split holds only one class")
