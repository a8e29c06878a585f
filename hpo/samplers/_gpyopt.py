"""A Gaussian-process sampler built on GPyOpt (GPy underneath).

This is the method of the original MRI study (GPyOpt Bayesian optimization,
Gaussian process, expected improvement) as an Optuna ``BaseSampler``, so it
runs inside our studies next to TPE and Optuna's GPSampler.

Stock GPyOpt fits the GP with five optimizer restarts and runs L-BFGS from
several anchors of the acquisition, each step a GP gradient prediction
(about 1.5 s per suggestion at 100 trials here). We keep GPyOpt's GP model
and acquisitions but change three things that cost time:

- the GP sees every parameter in the unit cube (log scales in log space,
  integers relaxed to a continuous range, categoricals one-hot), so the fit
  is equally conditioned whether ``unfrozen_layers`` has 11 values or 101;
- the acquisition is searched with batched predictions over feasible points
  (random ones, then shrinking local moves around the best, each projected
  onto the space's integers, steps and categories before scoring), then a
  short L-BFGS polish whose gradient is a batched central difference (GPy's
  analytic gradient cost 15 ms a call); no per-anchor optimizer runs;
- linear algebra runs on one BLAS thread: the matrices hold at most a few
  hundred rows, and OpenBLAS' threads spinning against other processes on a
  busy machine made a 100-trial suggestion ten times slower.

GPy and GPyOpt are imported when the sampler is made, so the seconds of that
import are never counted in a trial's ``suggest_seconds``. At 100 completed
trials of a 7-parameter space a suggestion took about 0.2 s of CPU here,
three quarters of it the GP fit.
Warm-starting the kernel hyperparameters from the previous fit was tried and
dropped: from a warm start the fit stayed in poor optima and the search fell
below random on Hartmann-6.
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import warnings
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import ConfigError
from hpo.samplers._unit_space import UnitSpace

if TYPE_CHECKING:
    from optuna.study import Study

ACQUISITIONS = ("EI", "MPI", "LCB")
_LOCAL_SCALES = (0.15, 0.05, 0.02, 0.008, 0.003, 0.001)  # of the unit cube, coarse to fine
_LOCAL_PER_ANCHOR = 50


@contextlib.contextmanager
def _quiet_seeded(seed: int) -> Iterator[None]:
    """GPyOpt draws from numpy's global RNG and prints; make both local, one BLAS thread."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    logging.getLogger("GP").setLevel(logging.ERROR)
    logging.getLogger("paramz").setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            _blas_controller().limit(limits=1, user_api="blas"),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        np.random.set_state(state)


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _import_gpyopt() -> Any:
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            import GPy  # noqa: F401
            import GPyOpt
    except ImportError as exc:
        raise ConfigError(
            f"sampler 'gpyopt' needs GPyOpt and GPy, which failed to import ({exc}); "
            "reinstall with ./bootstrap install"
        ) from None
    return GPyOpt


def _value_and_gradient(acq: Any, z: np.ndarray, h: float = 1e-5) -> tuple[float, np.ndarray]:
    """The acquisition and its central-difference gradient from one batched prediction.

    GPy's analytic predictive gradients cost 15 ms per point here, a batch of
    2 x dim + 1 predictions under 1 ms.
    """
    steps = np.eye(len(z)) * h
    up, down = np.clip(z + steps, 0.0, 1.0), np.clip(z - steps, 0.0, 1.0)
    f = acq.acquisition_function(np.vstack([z, up, down])).ravel()
    width = np.diag(up - down)
    grad = (f[1 : len(z) + 1] - f[len(z) + 1 :]) / np.where(width > 0, width, 1.0)
    return float(f[0]), grad


class GPyOptSampler(BaseSampler):
    """Bayesian optimization with a GPyOpt Gaussian process (EI, MPI or LCB).

    Fits on the study's COMPLETE trials, in the study's direction. The first
    ``n_initial`` trials are random. Trials still RUNNING enter the fit with
    the worst value seen so far (a constant liar), so parallel workers are
    pushed away from points already being evaluated. Same seed and same
    history give the same suggestion.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        acquisition: str = "EI",
        n_initial: int = 10,
        jitter: float = 0.01,
        exploration_weight: float = 2.0,
        ard: bool = True,
        gp_max_iters: int = 200,
        anchor_samples: int = 1000,
        anchors: int = 5,
        polish_iters: int = 10,
        max_fit_points: int = 150,
        constant_liar: bool = True,
    ) -> None:
        if acquisition not in ACQUISITIONS:
            raise ConfigError(
                f"sampler 'gpyopt': acquisition '{acquisition}' is not allowed; "
                f"allowed: {', '.join(ACQUISITIONS)}"
            )
        if n_initial < 1:
            raise ConfigError(f"sampler 'gpyopt': n_initial must be at least 1, got {n_initial}")
        # Import now (seconds, once per process), not inside the first timed suggestion.
        _import_gpyopt()
        _blas_controller()
        entropy = secrets.randbits(31)
        self._seed = int(seed) if seed is not None else entropy
        self._acquisition = acquisition
        self._n_initial = n_initial
        self._jitter = jitter
        self._weight = exploration_weight
        self._ard = ard
        self._gp_max_iters = gp_max_iters
        self._anchor_samples = anchor_samples
        self._anchors = anchors
        self._polish_iters = polish_iters
        self._max_fit_points = max_fit_points
        self._constant_liar = constant_liar
        self._random = RandomSampler(seed=seed)
        self._search_space = IntersectionSearchSpace(include_pruned=True)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._seed = secrets.randbits(31)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {
            name: dist
            for name, dist in self._search_space.calculate(study).items()
            if not dist.single()
        }

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        complete = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and all(n in t.params for n in search_space)
        ]
        if len(complete) < self._n_initial:
            return {}
        codec = UnitSpace(search_space)
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        if len(complete) > self._max_fit_points:
            # Keep the best half and the most recent rest: bounded cost, same optimum.
            ranked = sorted(complete, key=lambda t: sign * float(t.value))  # type: ignore[arg-type]
            half = self._max_fit_points // 2
            recent = sorted(ranked[half:], key=lambda t: t.number)[-(self._max_fit_points - half) :]
            complete = ranked[:half] + recent
        x = np.array([codec.encode(t.params) for t in complete], dtype=float)
        y = np.array([[sign * float(t.value)] for t in complete])  # type: ignore[arg-type]
        # A trial that broke a constraint enters the fit as the worst value seen,
        # so the GP steers away from it rather than towards its (unusable) score.
        broken = np.array([any(v > 0 for v in t.constraints.values()) for t in complete])
        if broken.any():
            y[broken] = y.max()
        others = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number != trial.number
        ]
        if self._constant_liar:
            running = [t for t in others if all(n in t.params for n in search_space)]
            if running:
                lie = float(y.max())  # the worst value seen (GPyOpt minimises)
                x = np.vstack([x, [codec.encode(t.params) for t in running]])
                y = np.vstack([y, np.full((len(running), 1), lie)])
        # Mixed, not summed: seed 20 at trial 13 must differ from seed 21 at trial 12.
        seed = int(
            np.random.SeedSequence([self._seed, len(complete), trial.number]).generate_state(1)[0]
        )
        with _quiet_seeded(seed):
            point = self._suggest(codec, x, y, parallel=bool(others))
        return codec.decode(point)

    def _suggest(
        self, codec: UnitSpace, x: np.ndarray, y: np.ndarray, *, parallel: bool = False
    ) -> np.ndarray:
        """The next point, in encoded units, from ``x`` (encoded) and ``y`` (minimized)."""
        gpyopt = _import_gpyopt()
        import GPy

        z = codec.to_unit(x)
        y_std = float(y.std()) or 1.0
        y_norm = (y - float(y.mean())) / y_std
        kernel = GPy.kern.Matern52(codec.dim, variance=1.0, ARD=self._ard)
        model = gpyopt.models.GPModel(
            kernel=kernel,
            exact_feval=False,
            optimize_restarts=1,
            max_iters=self._gp_max_iters,
            verbose=False,
        )
        model._create_model(z, y_norm)
        gp = model.model
        gp.optimize(optimizer="lbfgsb", max_iters=self._gp_max_iters, messages=False)
        if not np.all(np.isfinite(gp.param_array)):
            gp.randomize()
            gp.optimize(optimizer="lbfgsb", max_iters=self._gp_max_iters, messages=False)

        # The acquisition only asks the space for its constraints: the unit cube has none.
        space = gpyopt.Design_space(
            [{"name": f"z{i}", "type": "continuous", "domain": (0, 1)} for i in range(codec.dim)]
        )
        acquisitions = gpyopt.acquisitions
        if self._acquisition == "EI":
            acq = acquisitions.AcquisitionEI(model, space, None, jitter=self._jitter)
        elif self._acquisition == "MPI":
            acq = acquisitions.AcquisitionMPI(model, space, None, jitter=self._jitter)
        else:
            acq = acquisitions.AcquisitionLCB(model, space, None, exploration_weight=self._weight)
        best = self._optimize_acquisition(codec, acq, z, gp if parallel else None)
        return np.asarray(codec.from_unit(np.atleast_2d(best))[0])

    def _optimize_acquisition(
        self, codec: UnitSpace, acq: Any, z_seen: np.ndarray, gp: Any = None
    ) -> np.ndarray:
        """Score random feasible points and local moves around the best in batches,
        then polish the winner with a short bounded L-BFGS.

        Each round is one GP prediction over a few hundred points, far cheaper
        than GPyOpt's per-anchor L-BFGS runs (whose wrapper also hands scipy a
        (1, 1) array that current scipy rejects). The acquisition is GPyOpt's.
        """
        from scipy.optimize import minimize

        rng = np.random.default_rng(int(np.random.randint(2**31)))
        seen = {row.tobytes() for row in np.round(z_seen, 9)}
        pool = np.vstack([codec.random(rng, self._anchor_samples), z_seen])
        scores = acq.acquisition_function(pool).ravel()
        for scale in _LOCAL_SCALES:
            top = pool[np.argsort(scores)[: self._anchors]]
            local = codec.perturb(rng, np.repeat(top, _LOCAL_PER_ANCHOR, axis=0), scale)
            pool = np.vstack([pool, local])
            scores = np.concatenate([scores, acq.acquisition_function(local).ravel()])
        # Points already evaluated (or being evaluated) are anchors, never answers,
        # unless the space holds nothing else.
        fresh = np.array([row.tobytes() not in seen for row in np.round(pool, 9)])
        if fresh.any():
            scores = np.where(fresh, scores, np.inf)
        order = np.argsort(scores)
        best_x, best_f = pool[order[0]], float(scores[order[0]])
        if gp is not None:
            # Other workers are evaluating right now and may be asking at this very
            # moment, before their points are visible to the liar. A posterior
            # sample (Thompson) over the most promising candidates, seeded per
            # trial, sends each worker to a different good point.
            top = pool[order[:200]][np.isfinite(scores[order[:200]])]
            draw = gp.posterior_samples_f(top, size=1).reshape(len(top), -1)[:, 0]
            return np.asarray(top[int(np.argmin(draw))])
        if self._polish_iters <= 0:
            return np.asarray(best_x)

        res = minimize(
            lambda z: _value_and_gradient(acq, z),
            best_x,
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * codec.dim,
            options={"maxiter": self._polish_iters},
        )
        if np.all(np.isfinite(res.x)):
            polished = codec.project(np.atleast_2d(res.x))
            f = float(acq.acquisition_function(polished).ravel()[0])
            if f < best_f and np.round(polished[0], 9).tobytes() not in seen:
                best_x = polished[0]
        return np.asarray(best_x)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)
