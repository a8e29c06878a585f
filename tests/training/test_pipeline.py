"""hpo.training._pipeline and _timing: the parts that need no model."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hpo.training import Timing, class_weights


def test_balanced_class_weights() -> None:
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[0] == pytest.approx(4 / (2 * 3)) and w[1] == pytest.approx(2.0) and w[2] == 0.0


def test_a_nested_part_pauses_the_outer_one() -> None:
    timing = Timing()
    wall = time.perf_counter()
    with timing("fit"):
        time.sleep(0.02)
        with timing("predict"):
            time.sleep(0.05)
    wall = time.perf_counter() - wall
    assert timing.get("predict") >= 0.05 and timing.get("fit") >= 0.02
    # Paused: the two parts add up to the block's wall time (not fit + predict twice over),
    # however slow a busy machine makes the sleeps.
    assert timing.get("fit") + timing.get("predict") <= wall + 1e-3
    assert timing.get("never") == 0.0
