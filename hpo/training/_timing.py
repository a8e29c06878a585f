"""Where a trial's seconds go, part by part."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

# Parts of TrainResult.timing that are Keras' own work; everything else is harness overhead.
KERAS_PARTS = ("fit", "predict", "features")


class Timing:
    """Seconds per part of a trial; a nested part pauses the one around it.

    So ``fit`` is Keras' training alone: the validation predictions, metrics
    and reporter calls made from its callbacks are counted apart.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [part, started]

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:
            outer = self._stack[-1]
            self._add(outer[0], now - outer[1])
        self._stack.append([part, now])
        try:
            yield
        finally:
            now = time.perf_counter()
            name, started = self._stack.pop()
            self._add(name, now - started)
            if self._stack:
                self._stack[-1][1] = now

    def _add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    def get(self, part: str) -> float:
        return self.seconds.get(part, 0.0)
