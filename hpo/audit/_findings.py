"""Findings of an audit as plain data: duplicate groups, odd images, counts per split.

Kept apart from drawing (``_report``), like the reports' extract/figure split:
tests and ``--json`` read these objects, the HTML page only shows them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.audit._hashing import (
    MIN_CORRELATION,
    Duplicates,
    correlation,
    find_duplicates,
    hamming,
    n_bands,
)

if TYPE_CHECKING:
    from hpo.audit._source import AuditImages

SCHEMA = "hpo.audit/1"
ROBUST_Z = 3.5  # modified z-score (Iglewicz and Hoaglin) beyond which a value stands apart
INTENSITY_MAD_FLOOR = 1.0  # grey levels: below this spread, one level apart is no outlier
LOW_RANGE = 0.5  # an image spanning less than this share of the usual grey range is odd


@dataclass(frozen=True)
class Member:
    index: int
    split: str
    label: str
    id: str
    distance: int  # bits of the pHash that differ from the group's first member
    correlation: float  # of the 32x32 grey versions, with the group's first member
    file_sha256: str | None


@dataclass(frozen=True)
class Group:
    """Images that are the same picture: identical (exact) or within the threshold (near)."""

    kind: str  # "exact" | "near"
    members: list[Member]
    same_file_bytes: bool

    @property
    def splits(self) -> list[str]:
        return sorted({m.split for m in self.members}, key=["train", "val", "test"].index)

    @property
    def classes(self) -> list[str]:
        return sorted({m.label for m in self.members})

    @property
    def cross_split(self) -> bool:
        return len(self.splits) > 1

    @property
    def label_conflict(self) -> bool:
        return len(self.classes) > 1

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "size": len(self.members),
            "splits": self.splits,
            "classes": self.classes,
            "cross_split": self.cross_split,
            "label_conflict": self.label_conflict,
            "same_file_bytes": self.same_file_bytes,
            "members": [
                {
                    "split": m.split,
                    "class": m.label,
                    "id": m.id,
                    "distance": m.distance,
                    "correlation": round(m.correlation, 4),
                    "file_sha256": m.file_sha256,
                }
                for m in self.members
            ],
        }


@dataclass(frozen=True)
class Odd:
    """An image whose size, mode or intensity stands apart from the rest."""

    index: int
    split: str
    label: str
    id: str
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "class": self.label, "id": self.id, "reasons": self.reasons}


@dataclass(frozen=True)
class Tally:
    """The counts a summary line and the page's first paragraph are made of."""

    exact_groups: int
    exact_copies: int  # images beyond the first of each exact group
    near_groups: int
    near_images: int
    cross_split_groups: int
    cross_split_images: int
    label_conflicts: int
    within_class_groups: int

    @classmethod
    def of(cls, groups: list[Group]) -> Tally:
        exact = [g for g in groups if g.kind == "exact"]
        near = [g for g in groups if g.kind == "near"]
        leaks = [g for g in groups if g.cross_split]
        return cls(
            exact_groups=len(exact),
            exact_copies=sum(len(g.members) - 1 for g in exact),
            near_groups=len(near),
            near_images=sum(len(g.members) for g in near),
            cross_split_groups=len(leaks),
            cross_split_images=sum(len(g.members) for g in leaks),
            label_conflicts=sum(g.label_conflict for g in groups),
            within_class_groups=sum(not g.label_conflict for g in groups),
        )

    def line(self, target: str) -> str | None:
        """One line for a warning, or None when nothing was found."""
        if not (self.exact_groups or self.near_groups):
            return None
        parts = []
        if self.exact_groups:
            parts.append(f"{self.exact_copies} exact duplicate(s) in {self.exact_groups} group(s)")
        if self.near_groups:
            parts.append(f"{self.near_groups} near-duplicate group(s)")
        if self.cross_split_groups:
            parts.append(f"{self.cross_split_groups} group(s) across train/val/test")
        if self.label_conflicts:
            parts.append(f"{self.label_conflicts} label conflict(s)")
        return f"audit: {', '.join(parts)}; run 'hpo audit {target}' for details"


@dataclass
class Audit:
    images: AuditImages
    groups: list[Group]
    odd: list[Odd]
    threshold: int
    seconds: float = 0.0

    @property
    def tally(self) -> Tally:
        return Tally.of(self.groups)

    def counts(self) -> dict[str, dict[str, int]]:
        names = self.images.class_names
        out: dict[str, dict[str, int]] = {}
        for split in ("train", "val", "test"):
            labels = self.images.label[self.images.split == split]
            bins = np.bincount(labels, minlength=len(names))
            out[split] = {names[k]: int(bins[k]) for k in range(len(names))}
        return out

    def summary(self) -> dict[str, Any]:
        t = self.tally
        reasons = Counter(k for o in self.odd for k in {r.split(":")[0] for r in o.reasons})
        return {
            "images": len(self.images),
            "classes": len(self.images.class_names),
            "exact_groups": t.exact_groups,
            "exact_copies": t.exact_copies,
            "near_groups": t.near_groups,
            "near_images": t.near_images,
            "cross_split_groups": t.cross_split_groups,
            "cross_split_images": t.cross_split_images,
            "label_conflicts": t.label_conflicts,
            "within_class_groups": t.within_class_groups,
            "odd_images": len(self.odd),
            "odd_by_reason": {k: reasons[k] for k in ("size", "mode", "intensity") if reasons[k]},
        }

    def sentence(self) -> str:
        """The plain summary at the top of the page."""
        t, n = self.tally, len(self.images)
        if not self.groups:
            found = "no exact or near duplicates"
        else:
            found = (
                f"{t.exact_copies} exact duplicate(s) in {t.exact_groups} group(s) and "
                f"{t.near_groups} near-duplicate group(s) ({t.near_images} images); "
                f"{t.cross_split_groups} group(s) cross train/val/test "
                f"({t.cross_split_images} images) and {t.label_conflicts} carry more than "
                "one label"
            )
        return f"{n} images in {len(self.images.class_names)} classes: {found}; " + (
            f"{len(self.odd)} image(s) stand apart in size, mode or intensity."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "target": self.images.target,
            "source": self.images.source,
            "class_names": list(self.images.class_names),
            "given_splits": self.images.given_splits,
            "settings": {
                **self.images.settings,
                "hash": "dct-phash-64",
                "near_threshold": self.threshold,
                "min_correlation": MIN_CORRELATION,
                "bands": n_bands(self.threshold),
                "robust_z": ROBUST_Z,
                "low_range": LOW_RANGE,
            },
            "summary": self.summary(),
            "counts": self.counts(),
            "groups": [g.to_json() for g in self.groups],
            "odd_images": [o.to_json() for o in self.odd],
            "warnings": list(self.images.warnings),
            "seconds": round(self.seconds, 3),
        }


def groups_of(images: AuditImages, dup: Duplicates) -> list[Group]:
    """Duplicate groups with their members' splits, labels and file digests."""
    out: list[Group] = []
    names = images.class_names
    for idx in dup.groups():
        first = int(idx[0])
        corr = correlation(dup.grey, np.full(len(idx), first), idx)
        shas = [f.sha256 if f else None for f in (images.files[int(i)] for i in idx)]
        exact = len({int(dup.exact[int(i)]) for i in idx}) == 1
        # An exact group of files whose bytes also match is the same file saved twice.
        same_bytes = shas[0] is not None and len(set(shas)) == 1
        members = [
            Member(
                index=int(i),
                split=str(images.split[int(i)]),
                label=names[int(images.label[int(i)])],
                id=images.ids[int(i)],
                distance=int(hamming(dup.hashes[int(i)], dup.hashes[first])),
                correlation=float(r),
                file_sha256=sha,
            )
            for i, sha, r in zip(idx, shas, corr, strict=True)
        ]
        out.append(Group("exact" if exact else "near", members, same_bytes))
    return out


def _robust_z(values: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Modified z-score; with no spread (MAD 0) any value off the median is infinitely far."""
    median = np.median(values)
    mad = max(float(np.median(np.abs(values - median))), floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 0.6745 * (values - median) / mad if mad else np.where(values == median, 0.0, np.inf)
    return np.abs(z)


def intensity_stats(parts: list[np.ndarray]) -> np.ndarray:
    """(n, 4): mean, standard deviation, min and max of each image's pixels."""
    rows: list[np.ndarray] = []
    for part in parts:
        for start in range(0, len(part), 512):
            flat = part[start : start + 512].reshape(min(512, len(part) - start), -1)
            as_float = flat.astype(np.float32)
            rows.append(
                np.stack(
                    [as_float.mean(1), as_float.std(1), flat.min(1), flat.max(1)], axis=1
                ).astype(np.float64)
            )
    return np.concatenate(rows) if rows else np.zeros((0, 4))


def odd_images(images: AuditImages) -> list[Odd]:
    """Images whose pixel size, mode, or intensity stands apart (rules in the README)."""
    n = len(images)
    reasons: list[list[str]] = [[] for _ in range(n)]
    files = images.files
    if n and all(f is not None for f in files):
        widths = np.array([f.width for f in files if f], dtype=np.float64)
        heights = np.array([f.height for f in files if f], dtype=np.float64)
        typical = f"{int(np.median(widths))}x{int(np.median(heights))}"
        far = (_robust_z(widths) > ROBUST_Z) | (_robust_z(heights) > ROBUST_Z)
        for i in np.flatnonzero(far):
            reasons[i].append(f"size: {int(widths[i])}x{int(heights[i])} (typical {typical})")
        modes = Counter(f.mode for f in files if f)
        common = modes.most_common(1)[0][0]
        for k, f in enumerate(files):
            if f and f.mode != common:
                reasons[k].append(f"mode: {f.mode} (most images: {common})")
    stats = intensity_stats(images.parts)
    if n:
        for name, values in (("mean", stats[:, 0]), ("contrast", stats[:, 1])):
            median = float(np.median(values))
            for i in np.flatnonzero(_robust_z(values, INTENSITY_MAD_FLOOR) > ROBUST_Z):
                reasons[i].append(f"intensity: {name} {values[i]:.0f} (median {median:.0f})")
        # Most images span the whole grey scale, so the range has next to no spread and a
        # z-score would flag any image short of it; half the usual range is the rule instead.
        spans = stats[:, 3] - stats[:, 2]
        usual = float(np.median(spans))
        for i in np.flatnonzero(spans < LOW_RANGE * usual):
            reasons[i].append(f"intensity: range {spans[i]:.0f} (median {usual:.0f})")
    names = images.class_names
    return [
        Odd(i, str(images.split[i]), names[int(images.label[i])], images.ids[i], r)
        for i, r in enumerate(reasons)
        if r
    ]


def audit_images(images: AuditImages, threshold: int) -> Audit:
    """Every finding for the images: duplicate groups, odd images (counts come on demand)."""
    dup = find_duplicates(images.parts, threshold)
    return Audit(images, groups_of(images, dup), odd_images(images), threshold)
