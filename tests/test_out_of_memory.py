"""A trial that runs out of memory is failed with its reason, and the worker goes on.

The memory error is real: a head 2**40 units wide asks TensorFlow for a
kernel of several terabytes, and its allocator refuses with
``ResourceExhaustedError`` ("OOM when allocating tensor") at once, without
touching the machine's memory. The width reaches the trial the way a bad
point would: enqueued, outside the searched range (Optuna warns and uses it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from hpo import data as data_mod
from hpo import keys
from hpo.config import validate_config
from hpo.studies import create_or_resume
from hpo.training import clear_session
from hpo.worker import run_worker

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()
    clear_session()


def test_an_out_of_memory_trial_fails_and_the_worker_goes_on(sqlite_url: str) -> None:
    config = validate_config(
        {
            "study": {"name": "oom"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 20},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 1},
            "search_space": {
                "dense_units": {"type": "int", "low": 8, "high": 32},
                "batch_size": 16,
            },
            "sampler": {"name": "random", "seed": 0},
        }
    )
    study = create_or_resume(config, sqlite_url)
    study.enqueue_trial({"dense_units": 2**40})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Fixed parameter dense_units")
        summary = run_worker(config, study, n_trials=3)

    trials = optuna.load_study(study_name="oom", storage=sqlite_url).trials
    states = [t.state for t in trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE], (
        f"states {states}: the out-of-memory trial must fail alone, the next ones train"
    )
    reason = trials[0].user_attrs[keys.FAIL_REASON]
    assert reason.startswith("out of memory: "), reason
    assert "OOM when allocating tensor" in reason, reason
    assert "\n" not in reason and len(reason) <= 320
    assert trials[0].params["dense_units"] == 2**40
    assert summary.states == {"FAIL": 1, "COMPLETE": 2} and summary.stopped_reason is None
    assert all(8 <= t.params["dense_units"] <= 32 for t in trials[1:])
