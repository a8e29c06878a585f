"""Fixtures for the executor tests: the benchmark study, and real engines.

Slurm and Ray are started by the test session itself (``engines``); a
machine where one cannot run skips its tests with the reason, and CI fails
instead (``./bootstrap test`` installs Slurm, the test extras install Ray).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from hpo.config import StudyConfig, validate_config
from tests.executors.engines import Unavailable, local_ray, single_node_slurm

# Heartbeat every second, a silent trial lost after 4: a SIGKILLed worker's trial
# comes back within seconds instead of the default 90.
FAST_HEARTBEAT = {"HPO_HEARTBEAT_INTERVAL": "1", "HPO_GRACE_PERIOD": "4"}


def bench_config(name: str, trials: int = 6, seconds: float = 1.5) -> StudyConfig:
    """A study whose trials evaluate Branin for ``seconds``: no Keras, no data."""
    return validate_config(
        {
            "study": {"name": name},
            "objective": {"benchmark": "branin", "seconds": seconds},
            "sampler": {"name": "random", "seed": 0},
            "budget": {"trials": trials},
        }
    )


def _unavailable(exc: Unavailable) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{exc} (CI must run this test)")
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def slurm() -> Iterator[dict[str, str]]:
    """The client environment (``SLURM_CONF``) of a one-node Slurm started for the session."""
    try:
        cluster = single_node_slurm()
        env = cluster.__enter__()
    except Unavailable as exc:
        _unavailable(exc)
    try:
        yield env
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A local Ray with 2 CPUs and 4 logical GPUs, for the session."""
    try:
        cluster = local_ray()
        ray = cluster.__enter__()
    except Unavailable as exc:
        _unavailable(exc)
    try:
        yield ray
    finally:
        cluster.__exit__(None, None, None)
