"""An on-disk cache of backbone activations, shared by the workers of one host.

While a backbone layer is frozen its output does not depend on the trial's
hyperparameters, so the activations of the train and validation images are
computed once and every later trial trains on them. An entry is one array,
named by the sha256 of a canonical JSON of everything that determines it
(backbone, weights content, input shape, cut, dataset content, split, ...).
The key parts are stored inside the file too and checked on every read, so
a file can never be taken for another entry.

Safety: a file name is the hex key and nothing else; arrays are written with
``np.savez`` and read with ``allow_pickle=False``; a writer writes to a
temporary file in the same folder and renames it over the final name
(``os.replace`` is atomic), so a reader sees a whole entry or none. An
advisory lock per key lets one process compute while the others wait;
without locks (or after waiting too long) they compute the same array
redundantly, which costs time but never corrupts an entry.

This module imports numpy only, so tests and tools can use it without
TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import weakref
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

try:  # POSIX advisory locks; released by the kernel if the holder dies
    import fcntl
except ImportError:  # pragma: no cover - Windows: compute redundantly instead
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

ENV_DIR = "HPO_CACHE_DIR"
DEFAULT_DIR = Path("storage") / "cache"
FORMAT = 1  # bump when the layout of an entry changes; old entries then miss
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = ".npz"

# Counts of what the cache did in this process ("computed", "disk", "memory",
# "mismatch", "waited"): a cheap way for tests and logs to tell hits from misses.
stats: Counter[str] = Counter()


def canonical_json(parts: Mapping[str, Any]) -> str:
    """The one text form of the key parts that the key is the hash of."""
    return json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(parts).encode("ascii")).hexdigest()


def resolve_dir(configured: str | None = None) -> Path:
    """``$HPO_CACHE_DIR`` > the study file's ``training.cache_dir`` > ``storage/cache``."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    if configured:
        return Path(configured)
    return DEFAULT_DIR


# --------------------------------------------------------------------------
# content digests, memoised: a worker hashes its dataset and weights file once

_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}
_ARRAY_DIGESTS: dict[int, tuple[weakref.ref[np.ndarray], str]] = {}
_DIGEST_LOCK = threading.Lock()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, recomputed only when its size or mtime changes."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _DIGEST_LOCK:
        hit = _FILE_DIGESTS.get(memo)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _DIGEST_LOCK:
        _FILE_DIGESTS[memo] = digest
    return digest


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes, memoised per array object.

    The dataset's arrays live for the whole worker process, so each is hashed
    once; the weak reference guards against a recycled ``id``.
    """
    with _DIGEST_LOCK:
        hit = _ARRAY_DIGESTS.get(id(array))
        if hit is not None and hit[0]() is array:
            return hit[1]
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).data)
    digest = h.hexdigest()
    with _DIGEST_LOCK:
        _ARRAY_DIGESTS[id(array)] = (weakref.ref(array), digest)
    return digest


# --------------------------------------------------------------------------
# the cache


class _MemoryTier:
    """Recently used entries kept in this process, bounded by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self.lock:
            arr = self.items.get(key)
            if arr is not None:
                self.items.move_to_end(key)
            return arr

    def put(self, key: tuple[str, str], arr: np.ndarray) -> None:
        if arr.nbytes > self.max_bytes:
            return
        with self.lock:
            self.items[key] = arr
            self.items.move_to_end(key)
            while sum(a.nbytes for a in self.items.values()) > self.max_bytes:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


ENV_MEMORY_MB = "HPO_CACHE_MEMORY_MB"
_MEMORY: _MemoryTier | None = None
_MEMORY_LOCK = threading.Lock()


def _memory() -> _MemoryTier:
    """The process's memory tier, sized from ``$HPO_CACHE_MEMORY_MB`` on first use.

    Read then, not at import, so a worker that sets the variable after
    importing hpo still gets its size.
    """
    global _MEMORY
    with _MEMORY_LOCK:
        if _MEMORY is None:
            megabytes = float(os.environ.get(ENV_MEMORY_MB, "1024"))
            _MEMORY = _MemoryTier(int(megabytes * 2**20))
        return _MEMORY


def clear_memory() -> None:
    """Forget the entries held in this process (the files stay); the next use
    sizes the memory tier from the environment again."""
    global _MEMORY
    with _MEMORY_LOCK:
        if _MEMORY is not None:
            _MEMORY.clear()
        _MEMORY = None


class FeatureCache:
    """Arrays on disk under ``directory``, one ``<sha256>.npz`` per entry."""

    def __init__(self, directory: str | os.PathLike[str], *, wait_timeout: float = 900.0) -> None:
        self.directory = Path(directory)
        self.wait_timeout = wait_timeout

    def path_for(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError(f"cache key must be 64 lowercase hex digits, got {key!r}")
        return self.directory / f"{key}{_SUFFIX}"

    # -- reading

    def load(self, parts: Mapping[str, Any]) -> np.ndarray | None:
        """The stored array for ``parts``, or None when absent or not matching."""
        return self._lookup(parts)[0]

    def _lookup(self, parts: Mapping[str, Any]) -> tuple[np.ndarray | None, str]:
        key = cache_key(parts)
        memo = (str(self.directory.resolve()), key)
        arr = _memory().get(memo)
        if arr is not None:
            stats["memory"] += 1
            return arr, "memory"
        arr = self._read(self.path_for(key), canonical_json(parts))
        if arr is None:
            return None, "missing"
        stats["disk"] += 1
        _memory().put(memo, arr)
        return arr, "disk"

    def _read(self, path: Path, expected: str) -> np.ndarray | None:
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = str(npz["meta"][()])
                if meta != expected:
                    stats["mismatch"] += 1
                    log.warning("feature cache: %s holds other key parts; recomputing", path.name)
                    return None
                data = np.asarray(npz["data"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            stats["mismatch"] += 1
            log.warning("feature cache: %s unreadable (%s); recomputing", path.name, exc)
            return None
        data.setflags(write=False)  # shared between trials: nobody may change it
        return data

    # -- writing

    def store(self, parts: Mapping[str, Any], array: np.ndarray) -> Path:
        """Write an entry atomically: temporary file in the folder, then rename."""
        key = cache_key(parts)
        final = self.path_for(key)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, data=np.ascontiguousarray(array), meta=np.array(canonical_json(parts)))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return final

    def get_or_compute(
        self, parts: Mapping[str, Any], compute: Callable[[], np.ndarray]
    ) -> tuple[np.ndarray, str]:
        """The array for ``parts`` and where it came from: memory, disk or computed.

        One process per key computes while the others wait on its lock and
        then read its file.
        """
        arr, source = self._lookup(parts)
        if arr is not None:
            return arr, source
        key = cache_key(parts)
        with self._locked(key):
            arr = self.load(parts)  # someone else may have finished while we waited
            if arr is not None:
                return arr, "disk"
            t0 = time.perf_counter()
            arr = np.asarray(compute())
            self.store(parts, arr)
            stats["computed"] += 1
            log.info(
                "feature cache: computed %s (%s, %.1f MB) in %.1f s",
                key[:12],
                "x".join(str(s) for s in arr.shape),
                arr.nbytes / 2**20,
                time.perf_counter() - t0,
            )
        arr.setflags(write=False)
        _memory().put((str(self.directory.resolve()), key), arr)
        return arr, "computed"

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """Hold ``<key>.lock`` exclusively; after ``wait_timeout`` go on without it."""
        if fcntl is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # The lock file is never deleted: unlinking a lock file others may hold
        # would let two processes lock two different files of the same name.
        fd = os.open(self.directory / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.wait_timeout
            locked = False
            waited = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    if not waited:
                        stats["waited"] += 1
                        log.info("feature cache: waiting for another worker computing %s", key[:12])
                        waited = True
                    if time.monotonic() > deadline:
                        log.warning(
                            "feature cache: waited %.0f s for %s; computing it here too",
                            self.wait_timeout,
                            key[:12],
                        )
                        break
                    time.sleep(0.05)
            try:
                yield
            finally:
                if locked:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
