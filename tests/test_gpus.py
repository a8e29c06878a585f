from __future__ import annotations

import pytest

from hpo.errors import ConfigError
from hpo.gpus import ENV_OVERRIDE, cpu_threads_for, physical_device, plan_slots


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_OVERRIDE, "0,1,2,3")


def visible(slots: list) -> list[str]:  # type: ignore[type-arg]
    return [s.env()["CUDA_VISIBLE_DEVICES"] for s in slots]


def test_all_gpus_one_worker_each(four_gpus: None) -> None:
    slots = plan_slots("all", 1)
    assert visible(slots) == ["0", "1", "2", "3"]
    assert [s.name for s in slots] == ["gpu0-w0", "gpu1-w0", "gpu2-w0", "gpu3-w0"]
    assert all(s.env()["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for s in slots)


def test_chosen_gpus_and_workers_per_gpu(four_gpus: None) -> None:
    assert visible(plan_slots("0,1,3", 1)) == ["0", "1", "3"]
    assert visible(plan_slots("1,3", 2)) == ["1", "1", "3", "3"]


def test_cpu_workers(four_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    slots = plan_slots("none", 3)
    assert visible(slots) == ["", "", ""]
    assert slots[0].env(cpu_threads=2)["TF_NUM_INTRAOP_THREADS"] == "2"
    monkeypatch.setenv(ENV_OVERRIDE, "")
    assert visible(plan_slots("all", 2)) == ["", ""]  # no GPU: CPU workers


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("7", "GPU 7 not found; available: 0, 1, 2, 3"),
        ("a,b", "not 'all', 'none'"),
        ("1,1", "twice"),
    ],
)
def test_bad_gpu_lists(four_gpus: None, spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        plan_slots(spec, 1)
    with pytest.raises(ConfigError, match="workers-per-gpu"):
        plan_slots("all", 0)


def test_cpu_workers_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [cpu_threads_for(k) for k in (1, 2, 3, 16, 0)] == [8, 4, 2, 1, 8]


def test_physical_device_names_the_host_card() -> None:
    assert physical_device("GPU:0", visible="3") == "GPU:3"
    assert physical_device("GPU:1", visible="2,5") == "GPU:5"
    assert physical_device("GPU:0", visible="") == "GPU:0"
    assert physical_device("CPU:0", visible="3") == "CPU:0"
