"""Time of ``hpo audit`` on 10,000 images, and of the duplicate check at study creation.

    python benchmarks/audit_speed.py [--images 10000] [--keep DIR]

Writes a class-folder dataset of grey 208x176 PNGs (the Kaggle Alzheimer MRI
size) in 4 classes, each image its own random smooth pattern, with planted
traps: exact copies in the same class, brightened and JPEG-recompressed
copies, and copies under another class. Then it times

1. the whole audit of the folder (decoding, file bytes and headers, hashes,
   groups, odd images) and writing its HTML page, and checks that every
   planted group is found and no other;
2. ``study_warning`` on the dataset as a study decodes it (96x96 grey), the
   extra cost of the check when a study is created;
3. the duplicate check alone on 10,000 arrays of 224x224x3, what a pretrained
   backbone's study holds in memory.

Each step prints its wall time and the CPU time this process used (user +
system, all threads), and the load average is printed too: on a shared
machine the wall time says as much about the neighbours as about the audit.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpo.audit import audit, find_duplicates, study_warning, write_html
from hpo.config import DatasetSection
from hpo.data import clear_cache, load_dataset
from tests.audit.planted import brightened_jpeg

CLASSES = ("Mild_Demented", "Moderate_Demented", "Non_Demented", "Very_Mild_Demented")
HEIGHT, WIDTH = 208, 176


def _pattern(rng: np.random.Generator) -> np.ndarray:
    grid = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))


def write_dataset(root: Path, n: int, seed: int = 0) -> list[set[str]]:
    """``n`` images in all, 3% of them planted copies; returns the planted groups."""
    rng = np.random.default_rng(seed)
    n_exact, n_near, n_conflict = n // 100, n // 100, n // 100
    n_clean = n - n_exact - n_near - n_conflict
    files: list[str] = []
    for name in CLASSES:
        (root / name).mkdir(parents=True)
    for i in range(n_clean):
        rel = f"{CLASSES[i % len(CLASSES)]}/scan_{i:05d}.png"
        Image.fromarray(_pattern(rng)).save(root / rel, compress_level=1)
        files.append(rel)
    picks = rng.choice(n_clean, n_exact + n_near + n_conflict, replace=False)
    groups: list[set[str]] = []
    for k, i in enumerate(picks):
        original = files[int(i)]
        name = original.split("/")[0]
        if k < n_exact:
            copy = f"{name}/copy_{k}.png"
            shutil.copyfile(root / original, root / copy)
        elif k < n_exact + n_near:
            copy = f"{name}/bright_{k}.jpg"
            pixels = np.asarray(Image.open(root / original))
            (root / copy).write_bytes(brightened_jpeg(pixels))
        else:
            other = CLASSES[(CLASSES.index(name) + 1) % len(CLASSES)]
            copy = f"{other}/relabelled_{k}.png"
            shutil.copyfile(root / original, root / copy)
        groups.append({original, copy})
    return groups


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU"


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, default=None, help="Write the dataset here.")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    root = args.keep or Path(tmp) / "mri"
    try:
        t0 = time.perf_counter()
        planted = write_dataset(root, args.images)
        written = time.perf_counter() - t0

        with Clock() as audited:
            result = audit(root)
        with Clock() as paged:
            write_html(result, Path(tmp) / "audit.html")
        found = {frozenset(m.id for m in g.members) for g in result.groups}
        expected = {frozenset(g) for g in planted}

        clear_cache()
        section = {"source": "directory", "path": str(root), "image_size": 96, "channels": 1}
        with Clock() as decoded:
            dataset = load_dataset(DatasetSection.model_validate(section))
        with Clock() as warned:
            line = study_warning(dataset, "study.yaml")

        rng = np.random.default_rng(1)
        big = rng.integers(0, 256, (args.images, 224, 224, 3), dtype=np.uint8)
        with Clock() as big_check:
            find_duplicates([big])
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{args.images} images of {WIDTH}x{HEIGHT} written in {written:.1f} s")
    print(
        f"hpo audit (folder, decode at 64 px, hashes, groups, odd images): {audited}; "
        f"HTML page {paged}"
    )
    print(
        f"planted groups found: {len(found & expected)}/{len(expected)}, "
        f"other groups: {len(found - expected)}"
    )
    print(f"study creation: decode at 96x96 grey {decoded}; duplicate check {warned} -> {line}")
    print(f"duplicate check on {args.images} arrays of 224x224x3: {big_check}")


if __name__ == "__main__":
    main()
