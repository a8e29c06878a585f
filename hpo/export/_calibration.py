"""Temperature scaling and the expected calibration error (ECE).

The model ends in a float32 softmax, so its log-probabilities serve as logits:
``softmax(log p / T)`` is temperature scaling of the original logits (they
differ from ``log p`` by a per-row constant, which softmax ignores). ``T`` is
fitted on the validation split only, by minimising the negative
log-likelihood; the test split measures the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

N_BINS = 15  # equal-width confidence bins, as in Guo et al. (2017)
_EPS = 1e-12
_T_BOUNDS = (0.05, 20.0)


def log_probabilities(proba: np.ndarray) -> np.ndarray:
    """Logits up to a per-row constant; clipped so a hard zero stays finite."""
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), _EPS, 1.0))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``, computed stably."""
    z = log_probabilities(proba) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true classes at ``temperature``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), np.asarray(y, dtype=np.int64)]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The ``T`` minimising validation NLL (bounded scalar search on log T).

    One parameter, so it cannot change which class is predicted, only how
    confident the probabilities are.
    """
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        raise ValueError("no validation images to fit the temperature on")
    lo, hi = np.log(_T_BOUNDS[0]), np.log(_T_BOUNDS[1])
    res = minimize_scalar(
        lambda log_t: nll(logits, y, float(np.exp(log_t))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(res.x))


@dataclass(frozen=True)
class Reliability:
    """Per-bin confidence, accuracy and count, and the ECE they give."""

    edges: list[float]
    confidence: list[float | None]  # mean top probability per bin (None: empty bin)
    accuracy: list[float | None]
    count: list[int]
    ece: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "bins": len(self.count),
            "binning": "equal-width on the top-class probability",
            "edges": self.edges,
            "confidence": self.confidence,
            "accuracy": self.accuracy,
            "count": self.count,
            "ece": self.ece,
        }


def reliability(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """Top-class confidence against accuracy in ``n_bins`` equal-width bins.

    ECE = sum over bins of (bin share of images) * |accuracy - confidence|.
    A confidence of exactly 1 falls in the last bin.
    """
    p = np.asarray(proba, dtype=np.float64)
    conf = p.max(axis=1)
    right = (p.argmax(axis=1) == np.asarray(y)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(which, weights=right, minlength=n_bins)
    n = max(len(conf), 1)
    ece = float(np.abs(acc_sum - conf_sum).sum() / n)
    return Reliability(
        edges=[float(e) for e in edges],
        confidence=[float(s / c) if c else None for s, c in zip(conf_sum, count, strict=True)],
        accuracy=[float(s / c) if c else None for s, c in zip(acc_sum, count, strict=True)],
        count=[int(c) for c in count],
        ece=ece,
    )


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    return reliability(proba, y, n_bins).ece


@dataclass(frozen=True)
class Calibration:
    """What the card and ``model.json`` say about calibration on the test split."""

    before: Reliability
    temperature: float | None = None  # None: not calibrated
    after: Reliability | None = None
    n_validation: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": "test",
            "bins": len(self.before.count),
            "ece": self.before.ece,
            "reliability": self.before.to_dict(),
            "temperature": self.temperature,
            "fitted_on": "val" if self.temperature is not None else None,
            "n_validation": self.n_validation,
            "method": "temperature scaling of log-probabilities, NLL minimised (scipy)"
            if self.temperature is not None
            else None,
            "ece_after": self.after.ece if self.after is not None else None,
            "reliability_after": self.after.to_dict() if self.after is not None else None,
        }


def calibrate(
    val_proba: np.ndarray | None,
    val_y: np.ndarray | None,
    test_proba: np.ndarray,
    test_y: np.ndarray,
) -> Calibration:
    """ECE on the test split; with validation predictions, also fit T and measure again.

    The fit sees only ``val_proba``/``val_y``; the test arrays are used after it.
    """
    before = reliability(test_proba, test_y)
    if val_proba is None or val_y is None:
        return Calibration(before=before)
    temperature = fit_temperature(log_probabilities(val_proba), val_y)
    after = reliability(apply_temperature(test_proba, temperature), test_y)
    return Calibration(before, temperature, after, n_validation=len(val_y))
