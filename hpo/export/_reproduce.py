"""Is the exported model the trial it names? Its validation score against the trial's.

``hpo export`` retrains a trial from scratch; with the same recipe, data,
seed and machine the retrained model scores what the trial scored. When it
does not (another machine, backend or GPU kernels, or a training path that
is not seeded), the card must say so, or a reader takes the search's score
for the exported model's. The comparison is on the validation split the
search used, with the study's objective metric, against an estimate of the
noise between two trainings of one recipe:

- the spread (sample standard deviation) of the validation scores of the
  study's complete trials with the same parameters, when there are two or more;
- else the bootstrap standard error of the metric on the validation split
  (cases resampled within each class, as for the test intervals).

The difference of two scores with noise sigma each has a standard deviation
of sqrt(2) * sigma; a difference beyond two of those is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo import keys
from hpo.export._evaluate import _rates, _resample_indices
from hpo.facts import label_of

if TYPE_CHECKING:
    import optuna

Z = 2.0  # standard deviations of the difference that count as "outside the noise"
EXACT = 1e-6  # below this the scores are the same number, whatever the noise estimate
N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Noise:
    """How much one validation score of this recipe varies, and how that was estimated."""

    sigma: float
    method: str  # "same-params" or "bootstrap"
    n: int  # trials with the same parameters, or validation images

    @property
    def text(self) -> str:
        if self.method == "same-params":
            return f"spread of the {self.n} trials with the same parameters"
        return f"bootstrap standard error on the {self.n} validation images"


@dataclass(frozen=True)
class Reproduction:
    """The retrained model's validation score beside the trial's stored one."""

    metric: str
    trial: int
    trial_value: float | None
    retrained_value: float | None
    held_out: bool  # False when the model trained on train+val
    noise: Noise | None = None

    @property
    def difference(self) -> float | None:
        if self.trial_value is None or self.retrained_value is None:
            return None
        return self.retrained_value - self.trial_value

    @property
    def threshold(self) -> float | None:
        return None if self.noise is None else Z * math.sqrt(2.0) * self.noise.sigma

    @property
    def within_noise(self) -> bool | None:
        """None when there is nothing to compare (train+val, or a missing score)."""
        diff, limit = self.difference, self.threshold
        if not self.held_out or diff is None:
            return None
        return abs(diff) <= max(limit or 0.0, EXACT)

    @property
    def warning(self) -> str | None:
        if self.within_noise is not False:
            return None
        assert self.difference is not None and self.noise is not None
        assert self.threshold is not None
        label = label_of(self.metric)
        way = "below" if self.difference < 0 else "above"
        return (
            f"the exported model's validation {label} ({self.retrained_value:.4f}) is "
            f"{abs(self.difference):.4f} {way} trial {self.trial}'s ({self.trial_value:.4f}), "
            f"beyond the noise between trainings (2 x sqrt(2) x sigma = {self.threshold:.4f}; "
            f"sigma {self.noise.sigma:.4f}, {self.noise.text}): it is not the model the "
            "search scored"
        )

    def summary(self) -> str:
        """One line for the terminal: both scores, side by side."""
        label = label_of(self.metric)
        trial = "-" if self.trial_value is None else f"{self.trial_value:.4f}"
        mine = "-" if self.retrained_value is None else f"{self.retrained_value:.4f}"
        if not self.held_out:
            return (
                f"validation {label}: trial {self.trial} {trial}; the exported model trained "
                f"on train+val, so its validation score ({mine}) is not held out and is not "
                "compared"
            )
        diff = self.difference
        shown = "" if diff is None else f" (difference {diff:+.4f}"
        if diff is not None and self.noise is not None:
            shown += f"; noise sigma {self.noise.sigma:.4f}, {self.noise.text})"
        elif diff is not None:
            shown += ")"
        return f"validation {label}: trial {self.trial} {trial}, exported model {mine}{shown}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": "val",
            "metric": self.metric,
            "trial": self.trial,
            "trial_value": self.trial_value,
            "retrained_value": self.retrained_value,
            "held_out": self.held_out,
            "difference": None if self.difference is None else round(self.difference, 6),
            "noise": None
            if self.noise is None
            else {
                "sigma": round(self.noise.sigma, 6),
                "method": self.noise.method,
                "n": self.noise.n,
                "text": self.noise.text,
            },
            "threshold": None if self.threshold is None else round(self.threshold, 6),
            "within_noise": self.within_noise,
            "warning": self.warning,
        }


def same_params_values(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> list[float]:
    """Validation scores of the complete trials that ran the trial's full parameters."""
    from optuna.trial import TrialState

    params = trial.user_attrs.get(keys.PARAMS_FULL)
    if not isinstance(params, dict):
        return []
    return [
        float(t.value)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and t.user_attrs.get(keys.PARAMS_FULL) == params
    ]


def bootstrap_se(
    metric: str, confusion: list[list[int]], *, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0
) -> float:
    """Standard error of ``metric`` over resamples of the cases within each true class.

    Every objective metric is a function of the confusion matrix, so the
    cases are rebuilt from it as (true, predicted) pairs.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    k = cm.shape[0]
    pairs = [(t, p) for t in range(k) for p in range(k) for _ in range(int(cm[t, p]))]
    y = np.array([t for t, _ in pairs], dtype=np.int64)
    pred = np.array([p for _, p in pairs], dtype=np.int64)
    idx = _resample_indices(y, n_bootstrap, np.random.default_rng(seed))
    flat = (y[idx] * k + pred[idx]) + (np.arange(n_bootstrap)[:, None] * k * k)
    counts = np.bincount(flat.ravel(), minlength=n_bootstrap * k * k)
    scores = _rates(counts.reshape(n_bootstrap, k, k))[metric]
    return float(np.std(scores, ddof=1))


def estimate_noise(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    metric: str,
    confusion: list[list[int]],
    *,
    seed: int = 0,
) -> Noise:
    """Trials with the same parameters if there are two or more, else the bootstrap
    on the retrained model's validation confusion matrix."""
    peers = same_params_values(study, trial)
    if len(peers) >= 2:
        return Noise(float(np.std(peers, ddof=1)), "same-params", len(peers))
    sigma = bootstrap_se(metric, confusion, seed=seed)
    return Noise(sigma, "bootstrap", int(np.asarray(confusion).sum()))


def compare_validation(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    metric: str,
    retrained: dict[str, Any],
    confusion: list[list[int]],
    *,
    held_out: bool,
    seed: int = 0,
) -> Reproduction:
    """The retrained model's ``metric`` on validation against the trial's stored value."""
    value = retrained.get(metric)
    return Reproduction(
        metric=metric,
        trial=trial.number,
        trial_value=None if trial.value is None else float(trial.value),
        retrained_value=None if value is None else float(value),
        held_out=held_out,
        noise=estimate_noise(study, trial, metric, confusion, seed=seed) if held_out else None,
    )
