"""``dataset.duplicates: group | error`` checks that ``hpo.data`` calls while splitting.

``group`` hands the duplicate labels to the group-aware split (``hpo.data``);
``error`` refuses a partition in which one picture sits in two splits. Both
work on the decoded arrays, with the same hashes and threshold as the audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hpo.audit._hashing import find_duplicates
from hpo.errors import DataError

if TYPE_CHECKING:
    from hpo.config import DatasetSection


def duplicate_labels(parts: Sequence[np.ndarray]) -> np.ndarray:
    """A group label per image (over ``parts`` in order): same label, same picture."""
    return find_duplicates(parts).group


def refuse_leaks(labels: np.ndarray, splits: Sequence[np.ndarray], hint: str) -> None:
    """Raise when a duplicate group has images in two of ``splits`` (index arrays)."""
    split_of = np.full(len(labels), -1, dtype=np.int64)
    for k, idx in enumerate(splits):
        split_of[idx] = k
    pairs = np.unique(np.stack([labels, split_of], axis=1), axis=0)
    groups, n_splits = np.unique(pairs[:, 0], return_counts=True)
    crossing = groups[n_splits > 1]
    if len(crossing):
        images = int(np.isin(labels, crossing).sum())
        raise DataError(
            f"dataset.duplicates: {len(crossing)} duplicate group(s) ({images} images) cross "
            f"the train/val/test splits; {hint}, or set dataset.duplicates: group or ignore"
        )


def check_given_splits(cfg: DatasetSection, parts: Sequence[np.ndarray]) -> None:
    """Given splits (npz) cannot be regrouped; ``error`` still refuses copies across them."""
    if cfg.duplicates == "group":
        raise DataError(
            f"dataset.duplicates: 'group' cannot move images between the splits that "
            f"'{cfg.path}' gives; use 'error' to refuse copies across them, or 'ignore'"
        )
    if cfg.duplicates == "error":
        offsets = np.cumsum([0, *(len(p) for p in parts)])
        splits = [np.arange(offsets[k], offsets[k + 1]) for k in range(len(parts))]
        hint = f"run 'hpo audit {cfg.path}' to see them"
        refuse_leaks(duplicate_labels(parts), splits, hint)
