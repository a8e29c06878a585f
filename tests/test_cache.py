"""The on-disk feature cache: hits, misses, invalidation, hostile files, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hpo import cache as cache_mod
from hpo.cache import FeatureCache, cache_key

PARTS = {"backbone": "mobilenet_v2", "weights": "imagenet", "input_shape": [96, 96, 3], "n": 4}


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    cache_mod.clear_memory()
    cache_mod.stats.clear()
    yield
    cache_mod.clear_memory()


def _counting(value: float, calls: list[int]) -> np.ndarray:
    calls.append(1)
    return np.full((4, 3), value, dtype=np.float32)


def test_miss_then_memory_then_disk_hit(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    calls: list[int] = []
    arr, source = cache.get_or_compute(PARTS, lambda: _counting(1.0, calls))
    assert source == "computed" and calls == [1]
    assert (tmp_path / f"{cache_key(PARTS)}.npz").is_file()
    again, source = cache.get_or_compute(PARTS, lambda: _counting(2.0, calls))
    assert source == "memory" and calls == [1] and np.array_equal(again, arr)
    cache_mod.clear_memory()  # as a new worker process would start
    disk, source = cache.get_or_compute(PARTS, lambda: _counting(3.0, calls))
    assert source == "disk" and calls == [1] and np.array_equal(disk, arr)
    assert not disk.flags.writeable  # shared between trials: read-only
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "change",
    [
        {"backbone": "resnet50"},
        {"weights": "sha256:" + "0" * 64},
        {"input_shape": [128, 128, 3]},
        {"n": 5},
        {"cut": "block_13_project_BN"},
    ],
)
def test_any_changed_key_part_misses(tmp_path: Path, change: dict[str, object]) -> None:
    cache = FeatureCache(tmp_path)
    cache.get_or_compute(PARTS, lambda: np.zeros((4, 3), np.float32))
    calls: list[int] = []
    arr, source = cache.get_or_compute({**PARTS, **change}, lambda: _counting(5.0, calls))
    assert source == "computed" and calls == [1] and arr[0, 0] == 5.0
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_key_is_canonical() -> None:
    reordered = dict(reversed(list(PARTS.items())))
    assert cache_key(reordered) == cache_key(PARTS)
    assert cache_key({**PARTS, "n": 5}) != cache_key(PARTS)


def test_a_file_holding_other_key_parts_is_not_trusted(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    other = {**PARTS, "n": 99}
    path = cache.store(other, np.ones((4, 3), np.float32))
    os.replace(path, cache.path_for(cache_key(PARTS)))  # a file under the wrong name
    calls: list[int] = []
    arr, source = cache.get_or_compute(PARTS, lambda: _counting(7.0, calls))
    assert source == "computed" and arr[0, 0] == 7.0
    assert cache_mod.stats["mismatch"] >= 1


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04truncated"])
def test_a_damaged_file_is_recomputed(tmp_path: Path, content: bytes) -> None:
    cache = FeatureCache(tmp_path)
    cache.path_for(cache_key(PARTS)).write_bytes(content)
    arr, source = cache.get_or_compute(PARTS, lambda: np.full((4, 3), 2.0, np.float32))
    assert source == "computed" and arr[0, 0] == 2.0
    cache_mod.clear_memory()
    assert cache.get_or_compute(PARTS, lambda: np.zeros(1))[1] == "disk"  # repaired


def test_pickled_content_is_never_loaded(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    path = cache.path_for(cache_key(PARTS))
    with path.open("wb") as fh:  # an object array needs pickle to load
        np.savez(fh, data=np.array([{"x": 1}], dtype=object), meta=np.array("{}"))
    arr, source = cache.get_or_compute(PARTS, lambda: np.zeros((4, 3), np.float32))
    assert source == "computed" and arr.dtype == np.float32


@pytest.mark.parametrize("key", ["../escape" + "0" * 55, "/etc/passwd", "A" * 64, "0" * 63])
def test_file_names_are_hex_keys_only(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        FeatureCache(tmp_path).path_for(key)


def test_directory_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(cache_mod.ENV_DIR, raising=False)
    assert cache_mod.resolve_dir(None) == Path("storage") / "cache"
    assert cache_mod.resolve_dir(str(tmp_path)) == tmp_path
    monkeypatch.setenv(cache_mod.ENV_DIR, str(tmp_path / "env"))
    assert cache_mod.resolve_dir(str(tmp_path)) == tmp_path / "env"


def test_file_digest_follows_content(tmp_path: Path) -> None:
    f = tmp_path / "w.h5"
    f.write_bytes(b"one")
    first = cache_mod.file_digest(f)
    time.sleep(0.01)
    f.write_bytes(b"two")
    os.utime(f, ns=(time.time_ns(), time.time_ns()))
    assert cache_mod.file_digest(f) != first


# --------------------------------------------------------------------------
# concurrent writers: real processes on one folder


def _writer(directory: str, wait_timeout: float, log: str, start: Any, computing: Any) -> None:
    cache_mod.clear_memory()
    cache = FeatureCache(directory, wait_timeout=wait_timeout)
    start.wait(120)  # every process imported and ready: they ask at the same moment

    def compute() -> np.ndarray:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        if computing is not None:
            computing.wait(120)  # without the lock, all compute at once
        else:
            time.sleep(0.5)  # long enough for every other process to arrive and wait
        return np.arange(200_000, dtype=np.float32).reshape(1000, 200)

    arr, source = cache.get_or_compute(PARTS, compute)
    assert float(arr.sum()) == float(np.arange(200_000, dtype=np.float32).sum())
    with open(log + ".sources", "a") as fh:
        fh.write(f"{source}\n")


def _run_writers(
    tmp_path: Path, n: int, wait_timeout: float, *, all_compute: bool = False
) -> tuple[list[str], list[str]]:
    log = str(tmp_path / "computed.log")
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(n)
    computing = ctx.Barrier(n) if all_compute else None
    procs = [
        ctx.Process(
            target=_writer, args=(str(tmp_path / "c"), wait_timeout, log, start, computing)
        )
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    computed = Path(log).read_text().split()
    sources = Path(log + ".sources").read_text().split()
    return computed, sources


def test_concurrent_workers_compute_once(tmp_path: Path) -> None:
    computed, sources = _run_writers(tmp_path, 4, wait_timeout=60)
    assert len(computed) == 1
    assert sorted(sources) == ["computed", "disk", "disk", "disk"]
    assert [p.name for p in (tmp_path / "c").iterdir() if p.suffix == ".tmp"] == []


def test_concurrent_writers_without_the_lock_never_corrupt(tmp_path: Path) -> None:
    # wait_timeout=0: nobody waits for the lock holder, so several compute and
    # rename over one another; every reader still sees a whole entry.
    computed, sources = _run_writers(tmp_path, 4, wait_timeout=0, all_compute=True)
    assert len(computed) == 4
    assert len(sources) == 4
    cache_mod.clear_memory()
    arr = FeatureCache(tmp_path / "c").load(PARTS)
    assert arr is not None and arr.shape == (1000, 200)
    assert [p.name for p in (tmp_path / "c").iterdir() if p.suffix == ".tmp"] == []
