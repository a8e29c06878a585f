"""A Gaussian-process sampler built on GPyOpt (GPy underneath).

This is the method of the original MRI study (GPyOpt Bayesian optimization,
Gaussian process, expected improvement) as an Optuna ``BaseSampler``, so it
runs inside our studies next to TPE and Optuna's GPSampler.

Stock GPyOpt fits the GP with five optimizer restarts and runs L-BFGS from
several anchors of the acquisition, each step a GP gradient prediction
(about 1.5 s per suggestion at 100 trials here). We keep GPyOpt's GP model
and acquisitions but fit once with bounded iterations and search the
acquisition with batched predictions (random anchors, then shrinking local
perturbations of the best, then a short L-BFGS polish), which keeps a
suggestion under half a second at 100 trials at the same quality.
Warm-starting the kernel hyperparameters from the previous fit was tried and
dropped: from a warm start the fit stayed in poor optima and the search fell
below random on Hartmann-6.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import secrets
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import ConfigError

if TYPE_CHECKING:
    from optuna.study import Study

ACQUISITIONS = ("EI", "MPI", "LCB")
_MAX_GRID = 64  # discrete variables with more values are optimised as continuous


@contextlib.contextmanager
def _quiet_seeded(seed: int) -> Iterator[None]:
    """GPyOpt draws from numpy's global RNG and prints; make both local."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    logging.getLogger("GP").setLevel(logging.ERROR)
    logging.getLogger("paramz").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        np.random.set_state(state)


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


class _Codec:
    """Maps Optuna distributions to a GPyOpt domain and back."""

    def __init__(self, space: dict[str, BaseDistribution]) -> None:
        self.names = sorted(space)
        self.space = space
        self.domain: list[dict[str, Any]] = []
        for name in self.names:
            dist = space[name]
            if isinstance(dist, CategoricalDistribution):
                self.domain.append(
                    {"name": name, "type": "categorical", "domain": tuple(range(len(dist.choices)))}
                )
                continue
            assert isinstance(dist, (FloatDistribution, IntDistribution))
            grid = self._grid(dist)
            if grid is not None:
                self.domain.append({"name": name, "type": "discrete", "domain": tuple(grid)})
            elif dist.log:
                self.domain.append(
                    {
                        "name": name,
                        "type": "continuous",
                        "domain": (math.log(dist.low), math.log(dist.high)),
                    }
                )
            else:
                self.domain.append(
                    {"name": name, "type": "continuous", "domain": (dist.low, dist.high)}
                )

    @staticmethod
    def _grid(dist: FloatDistribution | IntDistribution) -> list[float] | None:
        if dist.log:
            if isinstance(dist, IntDistribution) and dist.high - dist.low + 1 <= _MAX_GRID:
                return [math.log(v) for v in range(dist.low, dist.high + 1)]
            return None
        step = dist.step
        if step is None:
            return None
        n = math.floor((dist.high - dist.low) / step + 1e-9) + 1
        if n > _MAX_GRID:
            return None
        return [float(dist.low + i * step) for i in range(n)]

    def encode(self, params: dict[str, Any]) -> list[float]:
        row: list[float] = []
        for name in self.names:
            dist = self.space[name]
            value = params[name]
            if isinstance(dist, CategoricalDistribution):
                row.append(float(dist.to_internal_repr(value)))
            elif isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log:
                row.append(math.log(value))
            else:
                row.append(float(value))
        return row

    def decode(self, x: Sequence[float] | np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, v in zip(self.names, x, strict=True):
            dist = self.space[name]
            if isinstance(dist, CategoricalDistribution):
                idx = int(np.clip(round(v), 0, len(dist.choices) - 1))
                out[name] = dist.choices[idx]
                continue
            assert isinstance(dist, (FloatDistribution, IntDistribution))
            value = math.exp(v) if dist.log else float(v)
            value = min(max(value, dist.low), dist.high)
            if isinstance(dist, IntDistribution):
                k = round((value - dist.low) / dist.step)
                value = int(min(dist.low + k * dist.step, dist.high))
            elif dist.step is not None:
                k = round((value - dist.low) / dist.step)
                value = float(min(dist.low + k * dist.step, dist.high))
            out[name] = value
        return out


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
        codec = _Codec(search_space)
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        if len(complete) > self._max_fit_points:
            # Keep the best half and the most recent rest: bounded cost, same optimum.
            ranked = sorted(complete, key=lambda t: sign * float(t.value))  # type: ignore[arg-type]
            half = self._max_fit_points // 2
            recent = sorted(ranked[half:], key=lambda t: t.number)[-(self._max_fit_points - half) :]
            complete = ranked[:half] + recent
        x = np.array([codec.encode(t.params) for t in complete], dtype=float)
        y = np.array([[sign * float(t.value)] for t in complete])  # type: ignore[arg-type]
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
        self, codec: _Codec, x: np.ndarray, y: np.ndarray, *, parallel: bool = False
    ) -> np.ndarray:
        gpyopt = _import_gpyopt()
        import GPy

        space = gpyopt.Design_space(codec.domain)
        x_model = space.unzip_inputs(x)
        y_std = float(y.std()) or 1.0
        y_norm = (y - float(y.mean())) / y_std
        dim = x_model.shape[1]
        kernel = GPy.kern.Matern52(dim, variance=1.0, ARD=self._ard)
        model = gpyopt.models.GPModel(
            kernel=kernel,
            exact_feval=False,
            optimize_restarts=1,
            max_iters=self._gp_max_iters,
            verbose=False,
        )
        model._create_model(x_model, y_norm)
        gp = model.model
        gp.optimize(optimizer="lbfgsb", max_iters=self._gp_max_iters, messages=False)
        if not np.all(np.isfinite(gp.param_array)):
            gp.randomize()
            gp.optimize(optimizer="lbfgsb", max_iters=self._gp_max_iters, messages=False)

        acq_optimizer = gpyopt.optimization.AcquisitionOptimizer(space, optimizer="lbfgs")
        acquisitions = gpyopt.acquisitions
        if self._acquisition == "EI":
            acq = acquisitions.AcquisitionEI(model, space, acq_optimizer, jitter=self._jitter)
        elif self._acquisition == "MPI":
            acq = acquisitions.AcquisitionMPI(model, space, acq_optimizer, jitter=self._jitter)
        else:
            acq = acquisitions.AcquisitionLCB(
                model, space, acq_optimizer, exploration_weight=self._weight
            )
        return self._optimize_acquisition(space, acq, x, gp if parallel else None)

    def _optimize_acquisition(
        self, space: Any, acq: Any, x_seen: np.ndarray, gp: Any = None
    ) -> np.ndarray:
        """Score random anchors and local perturbations of the best ones in batches,
        then polish the winner with a short bounded L-BFGS.

        Batched scoring is one GP prediction per round, far cheaper than GPyOpt's
        per-anchor L-BFGS runs; GPyOpt's own L-BFGS wrapper also hands scipy a
        (1, 1) array, which current scipy rejects. The acquisition and its
        gradients are still GPyOpt's.
        """
        from GPyOpt.experiment_design import initial_design
        from scipy.optimize import minimize

        bounds = np.array(space.get_bounds(), dtype=float)
        width = bounds[:, 1] - bounds[:, 0]
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        pool = space.unzip_inputs(
            np.vstack([initial_design("random", space, self._anchor_samples), x_seen])
        )
        scores = acq.acquisition_function(pool).ravel()
        # Points already evaluated (or being evaluated) are anchors, never answers.
        seen = np.zeros(len(pool), dtype=bool)
        seen[len(pool) - len(x_seen) :] = True
        for scale in (0.15, 0.05, 0.02, 0.008, 0.003, 0.001):
            top = pool[np.argsort(scores)[: self._anchors]]
            local = np.repeat(top, 50, axis=0) + rng.normal(size=(50 * len(top), pool.shape[1])) * (
                scale * width
            )
            local = np.clip(local, bounds[:, 0], bounds[:, 1])
            pool = np.vstack([pool, local])
            scores = np.concatenate([scores, acq.acquisition_function(local).ravel()])
            seen = np.concatenate([seen, np.zeros(len(local), dtype=bool)])
        scores = np.where(seen, np.inf, scores)
        best = int(np.argmin(scores))
        best_x, best_f = pool[best], float(scores[best])
        if gp is not None:
            # Other workers are evaluating right now and may be asking at this very
            # moment, before their points are visible to the liar. A posterior
            # sample (Thompson) over the most promising candidates, seeded per
            # trial, sends each worker to a different good point.
            top = pool[np.argsort(scores)[:200]]
            top = top[np.isfinite(np.sort(scores)[:200])]
            draw = gp.posterior_samples_f(top, size=1).reshape(len(top), -1)[:, 0]
            return self._finish(space, top[int(np.argmin(draw))])

        def f_df(z: np.ndarray) -> tuple[float, np.ndarray]:
            f, df = acq.acquisition_function_withGradients(np.atleast_2d(z))
            return float(np.asarray(f).ravel()[0]), np.asarray(df, dtype=float).ravel()

        if self._polish_iters > 0:
            res = minimize(
                f_df,
                best_x,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": self._polish_iters},
            )
            if np.all(np.isfinite(res.x)) and float(res.fun) < best_f:
                best_x = res.x
        return self._finish(space, best_x)

    @staticmethod
    def _finish(space: Any, x: np.ndarray) -> np.ndarray:
        rounded = space.round_optimum(np.atleast_2d(x))
        return np.asarray(space.zip_inputs(rounded), dtype=float).ravel()

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)
