"""Small image datasets with known traps planted in them, for the audit's tests.

Every clean image is its own random smooth pattern (a 6x6 random grid, enlarged
bicubically), so no two clean images are alike; the planted ones are the only
duplicates and odd images, and each test checks that the audit finds them all
and nothing else.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("glioma", "meningioma", "no_tumor")
SPLITS = ("train", "val", "test")
SIDE = 48


def pattern(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    grid = rng.integers(0, 256, (6, 6), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((side, side), Image.Resampling.BICUBIC))


def brightened_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """The image 20 grey levels brighter, saved again as JPEG: a near duplicate."""
    brighter = np.clip(image.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(brighter).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@dataclass
class Planted:
    root: Path
    exact: list[set[str]] = field(default_factory=list)  # same bytes, same class
    near: list[set[str]] = field(default_factory=list)  # brightened + JPEG, same class
    conflict: list[set[str]] = field(default_factory=list)  # same bytes, another class
    odd: dict[str, str] = field(default_factory=dict)  # file -> expected reason kind

    @property
    def groups(self) -> list[set[str]]:
        return [*self.exact, *self.near, *self.conflict]


def make_folder(root: Path, per_class: int = 40, copies: int = 6, seed: int = 0) -> Planted:
    """Class folders of PNGs with ``copies`` exact copies, near copies and label conflicts."""
    rng = np.random.default_rng(seed)
    planted = Planted(root)
    images: dict[str, np.ndarray] = {}
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            rel = f"{name}/img_{i:03d}.png"
            images[rel] = pattern(rng)
            Image.fromarray(images[rel]).save(root / rel)
    for k in range(copies):
        name = CLASSES[k % len(CLASSES)]
        other = CLASSES[(k + 1) % len(CLASSES)]
        original = f"{name}/img_{k:03d}.png"
        copy = f"{name}/copy_{k}.png"
        shutil.copyfile(root / original, root / copy)
        planted.exact.append({original, copy})
        source = f"{name}/img_{10 + k:03d}.png"
        near = f"{name}/bright_{k}.jpg"
        (root / near).write_bytes(brightened_jpeg(images[source]))
        planted.near.append({source, near})
        mislabelled = f"{name}/img_{20 + k:03d}.png"
        relabelled = f"{other}/relabelled_{k}.png"
        shutil.copyfile(root / mislabelled, root / relabelled)
        planted.conflict.append({mislabelled, relabelled})
    Image.fromarray(pattern(rng, side=2 * SIDE)).save(root / CLASSES[0] / "big.png")
    planted.odd[f"{CLASSES[0]}/big.png"] = "size"
    Image.fromarray(pattern(rng)).convert("RGBA").save(root / CLASSES[1] / "rgba.png")
    planted.odd[f"{CLASSES[1]}/rgba.png"] = "mode"
    Image.fromarray(pattern(rng) // 10).save(root / CLASSES[2] / "dark.png")
    planted.odd[f"{CLASSES[2]}/dark.png"] = "intensity"
    return planted


def make_npz(
    path: Path, per_split: tuple[int, int, int] = (60, 20, 20), seed: int = 1
) -> dict[str, set[str]]:
    """A MedMNIST-style .npz with given splits; returns where copies were planted.

    ``train[0]`` is copied exactly into val (at ``val[3]``), a brightened,
    JPEG-recompressed ``train[1]`` goes to test (``test[4]``) and ``val[5]`` is
    copied within val under the other label (``val[6]``).
    """
    rng = np.random.default_rng(seed)
    sizes = dict(zip(SPLITS, per_split, strict=True))
    x = {s: np.stack([pattern(rng, 28) for _ in range(n)]) for s, n in sizes.items()}
    y = {s: np.arange(n, dtype=np.uint8) % 2 for s, n in sizes.items()}
    x["val"][3], y["val"][3] = x["train"][0], y["train"][0]
    x["test"][4] = np.asarray(Image.open(io.BytesIO(brightened_jpeg(x["train"][1]))))
    y["test"][4] = y["train"][1]
    x["val"][6], y["val"][6] = x["val"][5], 1 - y["val"][5]
    arrays = {f"{s}_{k}": v[s] for s in SPLITS for k, v in (("images", x), ("labels", y))}
    np.savez(path, **arrays)
    return {
        "cross_exact": {"train[0]", "val[3]"},
        "cross_near": {"train[1]", "test[4]"},
        "conflict": {"val[5]", "val[6]"},
    }
