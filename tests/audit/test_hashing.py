"""Hashes and the banded near-pair search, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.audit import DEFAULT_NEAR_THRESHOLD, find_duplicates, merge_labels, perceptual_hashes
from hpo.audit._hashing import hamming, n_bands, near_pairs
from tests.audit.planted import brightened_jpeg, pattern


def _brute_force(hashes: np.ndarray, threshold: int) -> set[tuple[int, int]]:
    dist = hamming(hashes[:, None], hashes[None, :])
    i, j = np.nonzero(np.triu(dist <= threshold, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize("threshold", [0, 3, 4, 8, 12])
def test_banded_search_misses_no_pair_within_the_threshold(threshold: int) -> None:
    rng = np.random.default_rng(threshold)
    base = rng.integers(0, 2**63, 400, dtype=np.uint64)
    # Plant pairs at every distance up to threshold + 2: those within must all be found.
    planted = []
    for d in range(threshold + 3):
        for _ in range(5):
            bits = rng.choice(64, size=d, replace=False)
            flip = np.uint64(sum(1 << int(b) for b in bits))
            planted.append(base[rng.integers(len(base))] ^ flip)
    hashes = np.concatenate([base, np.array(planted, dtype=np.uint64)])
    found = {tuple(p) for p in near_pairs(hashes, threshold).tolist()}
    expected = _brute_force(hashes, threshold)
    assert found == expected
    assert len(expected) >= 5 * (threshold + 1)  # the planted pairs, at least
    assert n_bands(threshold) == max(4, threshold + 1)


def test_phash_survives_brightening_and_jpeg_but_not_another_image() -> None:
    from io import BytesIO

    from PIL import Image

    rng = np.random.default_rng(0)
    originals = np.stack([pattern(rng) for _ in range(50)])
    copies = np.stack([np.asarray(Image.open(BytesIO(brightened_jpeg(img)))) for img in originals])
    a, b = perceptual_hashes(originals), perceptual_hashes(copies)
    assert hamming(a, b).max() <= 6
    others = hamming(a[:, None], a[None, :])[np.triu_indices(50, k=1)]
    assert others.min() > 12


def test_colour_and_resized_images_hash_like_their_grey_originals() -> None:
    from hpo.data import resize_array

    rng = np.random.default_rng(1)
    grey = np.stack([pattern(rng, 28) for _ in range(20)])
    rgb = resize_array(grey, (224, 224), 3)  # what a pretrained backbone's study decodes
    assert hamming(perceptual_hashes(grey), perceptual_hashes(rgb)).max() <= DEFAULT_NEAR_THRESHOLD


def test_exact_and_near_groups_and_look_alikes() -> None:
    rng = np.random.default_rng(2)
    x = np.stack([pattern(rng) for _ in range(30)])
    x[5] = x[0]  # exact
    x[6] = np.clip(x[1].astype(int) + 15, 0, 255)  # near: brighter
    # A look-alike: same coarse layout (so a close pHash), different fine detail.
    x[7] = np.clip(x[2].astype(int) + rng.normal(0, 60, x[2].shape), 0, 255)
    dup = find_duplicates([x[:10], x[10:]])
    groups = [set(g.tolist()) for g in dup.groups()]
    assert {0, 5} in groups and {1, 6} in groups
    assert all(not ({2, 7} <= g) for g in groups), "noise on the same layout is no duplicate"
    assert dup.exact[0] == dup.exact[5] and dup.exact[1] != dup.exact[6]
    assert len(groups) == 2


def test_merge_labels_joins_overlapping_groups() -> None:
    subjects = np.array(["a", "a", "b", "c", "c", "d"])
    copies = np.array([0, 1, 2, 2, 4, 5])  # image 2 (subject b) copies image 3 (subject c)
    merged = merge_labels(subjects, copies)
    assert merged[2] == merged[3] == merged[4]
    assert len(set(merged.tolist())) == 3
