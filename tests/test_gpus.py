from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpo.errors import ConfigError
from hpo.gpus import (
    ENV_OVERRIDE,
    Gpu,
    cpu_threads_for,
    discover_gpus,
    parse_nvidia_smi,
    physical_device,
    plan_slots,
)


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


# --- nvidia-smi as drivers print it -----------------------------------------
# Recorded from `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader`
# (what discover_gpus runs; with `nounits` the " MiB" is missing).

ONE_A100 = "0, NVIDIA A100-SXM4-80GB, 81920 MiB\n"
TWO_RTX = "0, NVIDIA GeForce RTX 3090, 24576 MiB\n1, NVIDIA GeForce RTX 3090, 24576 MiB\n"
EIGHT_H100 = "".join(f"{i}, NVIDIA H100 80GB HBM3, 81559 MiB\n" for i in range(8))
NOUNITS_T4 = "0, Tesla T4, 15360\n1, Tesla T4, 15360\n"
# MIG mode on: --query-gpu lists the physical card, not its MIG instances.
MIG_A100 = "0, NVIDIA A100-SXM4-40GB, 40960 MiB\n1, NVIDIA A100-SXM4-40GB, [N/A]\n"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n\n"
)
NO_DEVICES = "No devices were found\n"


def fake_nvidia_smi(folder: Path, stdout: str, code: int = 0) -> Path:
    """An ``nvidia-smi`` on PATH that prints a recorded answer and logs its arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "answer.txt").write_text(stdout)
    exe = folder / "nvidia-smi"
    exe.write_text(
        f'#!/bin/sh\necho "$@" > "{folder}/args.txt"\ncat "{folder}/answer.txt"\nexit {code}\n'
    )
    exe.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        (ONE_A100, [Gpu("0", "NVIDIA A100-SXM4-80GB", 81920)]),
        (TWO_RTX, [Gpu(str(i), "NVIDIA GeForce RTX 3090", 24576) for i in range(2)]),
        (EIGHT_H100, [Gpu(str(i), "NVIDIA H100 80GB HBM3", 81559) for i in range(8)]),
        (NOUNITS_T4, [Gpu(str(i), "Tesla T4", 15360) for i in range(2)]),
        (
            MIG_A100,
            [Gpu("0", "NVIDIA A100-SXM4-40GB", 40960), Gpu("1", "NVIDIA A100-SXM4-40GB", None)],
        ),
        (NO_DRIVER, []),
        (NO_DEVICES, []),
        ("", []),
    ],
    ids=["1-gpu", "2-gpus", "8-gpus", "nounits", "mig", "no-driver", "no-devices", "empty"],
)
def test_parse_recorded_nvidia_smi_outputs(stdout: str, expected: list[Gpu]) -> None:
    assert parse_nvidia_smi(stdout) == expected


@pytest.mark.parametrize(
    ("stdout", "code", "indices"),
    [
        (EIGHT_H100, 0, [str(i) for i in range(8)]),
        (MIG_A100, 0, ["0", "1"]),
        (NO_DRIVER, 9, []),  # the driver is not loaded: exit 9, a CPU machine for hpo
        (NO_DEVICES, 6, []),
    ],
    ids=["8-gpus", "mig", "no-driver", "no-devices"],
)
def test_discovery_runs_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdout: str, code: int, indices: list[str]
) -> None:
    folder = fake_nvidia_smi(tmp_path / "bin", stdout, code)
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    assert [g.index for g in discover_gpus()] == indices
    args = (folder / "args.txt").read_text().split()
    assert args == ["--query-gpu=index,name,memory.total", "--format=csv,noheader"]


def test_eight_gpus_two_workers_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = fake_nvidia_smi(tmp_path / "bin", EIGHT_H100)
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    slots = plan_slots("all", 2)
    assert visible(slots) == [str(i) for i in range(8) for _ in range(2)]
    assert slots[0].label == "0 NVIDIA H100 80GB HBM3 80 GiB"
    assert [s.gpu for s in plan_slots("6,7", 1)] == ["6", "7"]
    with pytest.raises(ConfigError, match="GPU 8 not found; available: 0, 1, 2, 3, 4, 5, 6, 7"):
        plan_slots("8", 1)


def test_a_machine_without_nvidia_smi_runs_cpu_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no nvidia-smi anywhere
    assert discover_gpus() == []
    assert [(s.name, s.gpu, s.label) for s in plan_slots("all", 2)] == [
        ("cpu-w0", None, "cpu"),
        ("cpu-w1", None, "cpu"),
    ]
