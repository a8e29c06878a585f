"""Leakage and duplicate audit of an image dataset.

Public MRI sets hold the same scan saved twice (sometimes under two labels),
slices of one subject on both sides of a split, and images of odd sizes or
modes; a tuned model's score is only as honest as its split. ``audit`` finds
exact duplicates (identical pixels or file bytes) and near duplicates (64-bit
DCT pHash within ``near_threshold`` bits) within a class, across classes and
across train/validation/test, and images that stand apart; ``write_html``
draws them, ``Audit.to_json`` is the stable schema for scripts.

``study_warning`` is the cheap version run when a study is created, and
``duplicate_labels``, ``refuse_leaks`` and ``check_given_splits`` serve
``hpo.data`` for ``dataset.duplicates: group | error``. All of them work on
arrays already decoded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.audit._findings import SCHEMA, Audit, Group, Odd, Tally, audit_images, groups_of
from hpo.audit._hashing import (
    DEFAULT_NEAR_THRESHOLD,
    MAX_NEAR_THRESHOLD,
    Duplicates,
    find_duplicates,
    merge_labels,
    perceptual_hashes,
)
from hpo.audit._report import render, write_html
from hpo.audit._source import AuditImages, from_dataset, load_images
from hpo.audit._split import check_given_splits, duplicate_labels, refuse_leaks
from hpo.errors import ConfigError

if TYPE_CHECKING:
    from hpo.data import Dataset


def audit(target: str | Path, *, near_threshold: int = DEFAULT_NEAR_THRESHOLD) -> Audit:
    """Audit a study file's dataset (with its split), a class-folder dataset or an .npz."""
    if not 0 <= near_threshold <= MAX_NEAR_THRESHOLD:
        raise ConfigError(
            f"--near-threshold: must be between 0 and {MAX_NEAR_THRESHOLD} bits, "
            f"got {near_threshold}"
        )
    start = time.perf_counter()
    result = audit_images(load_images(target), near_threshold)
    result.seconds = time.perf_counter() - start
    return result


def study_warning(dataset: Dataset, study_file: str) -> str | None:
    """One line when the study's data holds duplicates (None when clean).

    Hashes the arrays already decoded (no file is read again), so it costs a
    fraction of decoding: for study creation, where the full audit is too much.
    """
    images = from_dataset(dataset, target=study_file)
    dup = find_duplicates(images.parts)
    return Tally.of(groups_of(images, dup)).line(study_file)


__all__ = [
    "DEFAULT_NEAR_THRESHOLD",
    "SCHEMA",
    "Audit",
    "AuditImages",
    "Duplicates",
    "Group",
    "Odd",
    "Tally",
    "audit",
    "check_given_splits",
    "duplicate_labels",
    "find_duplicates",
    "merge_labels",
    "perceptual_hashes",
    "refuse_leaks",
    "render",
    "study_warning",
    "write_html",
]
