"""Content and perceptual hashes of decoded images, and duplicate groups from them.

Everything here works on the uint8 arrays ``hpo.data`` already decoded, so a
study pays no second decode for its duplicate check. The perceptual hash is a
64-bit DCT pHash (grey 32x32 by area averaging, the 8x8 lowest frequencies
against their median): brightness and contrast changes and JPEG
recompression move few bits, a different image about half of them.

Near pairs are found without comparing every pair: the 64 bits are cut into
``threshold + 1`` bands (at least 4, so 16 bits each at small thresholds);
two hashes within ``threshold`` bits agree exactly on at least one band
(pigeonhole), so every such pair shares a bucket, and only bucket-mates get an
exact Hamming check (numpy popcount). A pair within the threshold is a near
duplicate when its 32x32 grey versions also correlate at ``MIN_CORRELATION``
or more: chest X-rays of different children can share a pHash within a few
bits (correlation about 0.85), while a brightened, recompressed copy keeps
0.99.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

HASH_SIDE = 32  # images are reduced to 32x32 grey before the DCT
LOW = 8  # 8x8 lowest frequencies -> 64 bits
DEFAULT_NEAR_THRESHOLD = 8
"""Hamming distance (bits of 64) at or below which two images are near-duplicate candidates."""
MIN_CORRELATION = 0.97
"""Pearson correlation of the 32x32 grey versions a candidate pair needs to be a near duplicate."""
MAX_NEAR_THRESHOLD = 16
_CHUNK = 256  # images per block: bounds the float32 copy of each block
_SMALL_RUN = 32  # buckets up to this size are checked together, vectorised by size


@cache
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: each output cell averages the input span it covers."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    weights: np.ndarray = (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)
    return weights


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: ``C @ x @ C.T`` is the 2-D DCT of x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    matrix: np.ndarray = c.astype(np.float32)
    return matrix


def _column_matrix(w: int, channels: int) -> np.ndarray:
    """(w * channels, 32): area-average the columns and mix channels to luma in one product."""
    cols = _area_matrix(w, HASH_SIDE).T
    if channels == 1:
        return cols
    luma = np.zeros(channels, dtype=np.float32)
    luma[:3] = (0.299, 0.587, 0.114) if channels >= 3 else (1.0, 0.0, 0.0)[:channels]
    return np.kron(cols, luma[:, None]).astype(np.float32)


def fingerprints(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pHash (uint64) and the centred, unit-norm 32x32 grey version (float16) of each image."""
    n = int(images.shape[0])
    hashes = np.zeros(n, dtype=np.uint64)
    grey = np.zeros((n, HASH_SIDE * HASH_SIDE), dtype=np.float16)
    if n == 0:
        return hashes, grey
    h, w = int(images.shape[1]), int(images.shape[2])
    channels = int(images.shape[3]) if images.ndim == 4 else 1
    # Large images: sum blocks of `step` rows first (integer adds, one pass), so the
    # float copy and the product below see fewer than 64 rows per image.
    step = max(1, h // HASH_SIDE)
    kept = h // step
    rows, cols = _area_matrix(kept, HASH_SIDE), _column_matrix(w, channels)
    dct = _dct_matrix(HASH_SIDE)[:LOW]
    sum_type = np.uint16 if 255 * step < 2**16 else np.uint32
    from threadpoolctl import threadpool_limits

    # Small products: BLAS threads cost more than they save (10x on a busy machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, n, _CHUNK):
            block = images[start : start + _CHUNK].reshape(-1, h, w * channels)
            k = len(block)
            if step > 1:
                block = block[:, : kept * step].reshape(k, kept, step, -1).sum(2, dtype=sum_type)
            # One product over all rows of the block: (k*rows, w*c) @ (w*c, 32).
            flat = block.reshape(k * kept, w * channels).astype(np.float32)
            small = rows @ (flat @ cols).reshape(k, kept, HASH_SIDE)
            low = (dct @ small @ dct.T).reshape(k, LOW * LOW)
            middle = np.sort(low, axis=1)[:, LOW * LOW // 2 - 1 : LOW * LOW // 2 + 1].mean(axis=1)
            bits = np.packbits(low > middle[:, None], axis=1, bitorder="little")
            hashes[start : start + k] = bits.view("<u8")[:, 0]
            centred = small.reshape(k, -1) - small.reshape(k, -1).mean(axis=1, keepdims=True)
            norm = np.linalg.norm(centred, axis=1, keepdims=True)
            grey[start : start + k] = centred / np.where(norm > 0, norm, np.inf)
    return hashes, grey


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """64-bit DCT pHash of each image of ``(n, h, w[, c])`` uint8, as uint64."""
    return fingerprints(images)[0]


def correlation(grey: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Pearson correlation of the grey versions of each pair (0 with a blank image)."""
    out = np.empty(len(left), dtype=np.float32)
    for start in range(0, len(left), 4096):  # bounds the (pairs x 1024) temporaries
        a = grey[left[start : start + 4096]].astype(np.float32)
        b = grey[right[start : start + 4096]].astype(np.float32)
        out[start : start + 4096] = np.einsum("ij,ij->i", a, b)
    return out


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bits that differ between 64-bit hashes (elementwise)."""
    return np.bitwise_count(np.bitwise_xor(np.uint64(a), np.uint64(b)))  # type: ignore[no-any-return]


def n_bands(threshold: int) -> int:
    """Bands the hash is cut into so that no pair within ``threshold`` bits is missed."""
    return max(4, threshold + 1)


def _band_keys(hashes: np.ndarray, bands: int) -> list[np.ndarray]:
    widths = [64 // bands + (1 if b < 64 % bands else 0) for b in range(bands)]
    keys, shift = [], 0
    for width in widths:
        mask = np.uint64((1 << width) - 1)
        keys.append((hashes >> np.uint64(shift)) & mask)
        shift += width
    return keys


def _pairs_in_runs(
    hashes: np.ndarray, order: np.ndarray, starts: np.ndarray, sizes: np.ndarray, threshold: int
) -> list[np.ndarray]:
    """(k, 2) index pairs within ``threshold`` bits, inside each run of ``order``."""
    found: list[np.ndarray] = []
    for m in np.unique(sizes[(sizes >= 2) & (sizes <= _SMALL_RUN)]):
        members = order[starts[sizes == m][:, None] + np.arange(m)]  # (runs, m)
        a, b = np.triu_indices(int(m), k=1)
        left, right = members[:, a].ravel(), members[:, b].ravel()
        keep = hamming(hashes[left], hashes[right]) <= threshold
        found.append(np.stack([left[keep], right[keep]], axis=1))
    for start, m in zip(starts[sizes > _SMALL_RUN], sizes[sizes > _SMALL_RUN], strict=True):
        members = order[start : start + m]
        for row in range(0, int(m) - 1, 512):  # blocks of rows bound the m x m matrix
            left = members[row : row + 512]
            dist = hamming(hashes[left][:, None], hashes[members][None, :])
            i, j = np.nonzero(dist <= threshold)
            upper = row + i < j
            found.append(np.stack([left[i[upper]], members[j[upper]]], axis=1))
    return found


def near_pairs(
    hashes: np.ndarray,
    threshold: int,
    grey: np.ndarray | None = None,
    min_correlation: float = MIN_CORRELATION,
) -> np.ndarray:
    """(k, 2) index pairs i < j within ``threshold`` bits (LSH bands), confirmed by ``grey``."""
    if len(hashes) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    found: list[np.ndarray] = []
    for key in _band_keys(hashes, n_bands(threshold)):
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.diff(key[order])) + 1
        starts = np.concatenate([[0], bounds])
        sizes = np.diff(np.concatenate([starts, [len(key)]]))
        found.extend(_pairs_in_runs(hashes, order, starts, sizes, threshold))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    pairs.sort(axis=1)
    pairs = np.unique(pairs, axis=0)  # a pair sharing several bands was found once per band
    if grey is not None and len(pairs):
        pairs = pairs[correlation(grey, pairs[:, 0], pairs[:, 1]) >= min_correlation]
    return pairs


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Duplicates:
    """Duplicate structure of n images (indices run over the parts in order).

    ``group`` labels connected images (exact or near pairs, chained), ``exact``
    labels images with identical pixels; ``hashes`` are the pHashes, ``grey``
    the vectors near pairs were confirmed with, ``digests`` the pixel digests
    of the images that share a pHash with another (no others are digested).
    """

    hashes: np.ndarray
    grey: np.ndarray
    group: np.ndarray
    exact: np.ndarray
    digests: dict[int, str]
    threshold: int

    def groups(self) -> list[np.ndarray]:
        """Indices of each group of two or more images, largest first."""
        _, inverse, counts = np.unique(self.group, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        found = [g for g in np.split(order, np.cumsum(counts)[:-1]) if len(g) > 1]
        return sorted(found, key=lambda g: (-len(g), int(g[0])))


def pixel_digest(image: np.ndarray) -> str:
    """Digest of an image's shape and pixels (what training sees, not the file)."""
    h = hashlib.blake2b(str(image.shape).encode(), digest_size=16)
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def _same_label_pairs(labels: np.ndarray) -> np.ndarray:
    """Pairs that chain the images of each label together (k - 1 pairs for k images)."""
    order = np.argsort(labels, kind="stable")
    same = labels[order][1:] == labels[order][:-1]
    return np.stack([order[:-1][same], order[1:][same]], axis=1).astype(np.int64)


def merge_labels(*labelings: np.ndarray) -> np.ndarray:
    """One label per image: images sharing a label in any labeling end up together."""
    pairs = [_same_label_pairs(np.unique(lab, return_inverse=True)[1]) for lab in labelings]
    return _components(len(labelings[0]), np.concatenate(pairs))


def find_duplicates(
    parts: Sequence[np.ndarray], threshold: int = DEFAULT_NEAR_THRESHOLD
) -> Duplicates:
    """Exact and near duplicates among the images of ``parts`` (concatenated in order).

    Identical pixels give identical pHashes, so only images sharing a pHash are
    digested: no pass over every byte of a large dataset.
    """
    found = [fingerprints(p) for p in parts]
    hashes = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.uint64)
    grey = np.concatenate([f[1] for f in found]) if found else np.zeros((0, 1), np.float16)
    offsets = np.cumsum([0, *(len(p) for p in parts)])

    def image(i: int) -> np.ndarray:
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        one: np.ndarray = parts[k][i - offsets[k]]
        return one

    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    digests = {int(i): pixel_digest(image(int(i))) for i in np.flatnonzero(counts[inverse] > 1)}
    keys = np.array([digests.get(i, f"#{i}") for i in range(len(hashes))], dtype=object)
    exact = np.unique(keys, return_inverse=True)[1].astype(np.int64)
    pairs = np.concatenate([_same_label_pairs(exact), near_pairs(hashes, threshold, grey)])
    group = _components(len(hashes), pairs) if len(pairs) else np.arange(len(hashes))
    return Duplicates(hashes, grey, group, exact, digests, threshold)
