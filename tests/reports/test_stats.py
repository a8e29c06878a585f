from __future__ import annotations

import pytest

from hpo.reports._stats import bootstrap_mean, holm


def test_holm_adjusts_in_the_order_given() -> None:
    # Sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to 0.06 (monotone).
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])  # one test: unchanged
    assert holm([]) == []


def test_bootstrap_interval_is_seeded_and_holds_the_mean() -> None:
    values = [0.2, 0.4, 0.35, 0.9, 0.1]
    mean, low, high = bootstrap_mean(values, seed=3)
    assert mean == pytest.approx(0.39)
    assert low < mean < high and min(values) <= low and high <= max(values)
    assert bootstrap_mean(values, seed=3) == (mean, low, high)
    assert bootstrap_mean([0.5]) == (0.5, 0.5, 0.5)
