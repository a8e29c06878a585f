"""What `pip install hpo` (and each extra) selects on every platform, and that wheels exist.

The markers in pyproject.toml are evaluated with ``packaging.markers`` for
each platform, so the table of which TensorFlow / JAX / torch requirement a
platform gets is asserted without installing anything. The slow tests ask
PyPI (``pip install --dry-run --report``, nothing is installed) that a wheel
exists for each of those requirements on that platform, and that the CPU
path pulls no NVIDIA CUDA wheels while ``hpo[cuda]`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
HEAVY = ("tensorflow", "tensorflow-cpu", "jax", "torch")  # the backends and their builds


def _env(system: str, sys_platform: str, machine: str) -> dict[str, str]:
    return {
        "python_version": "3.11",
        "python_full_version": "3.11.9",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_system": system,
        "sys_platform": sys_platform,
        "platform_machine": machine,
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
    }


LINUX_X86 = _env("Linux", "linux", "x86_64")
LINUX_ARM = _env("Linux", "linux", "aarch64")
MACOS_ARM = _env("Darwin", "darwin", "arm64")

X86 = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux2014_x86_64")
ARM = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64")
MAC = ("macosx_14_0_arm64",)  # pip accepts older macOS wheels for it too

# name -> (marker environment, extras installed, pip --platform tags)
PLATFORMS: dict[str, tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]] = {
    "linux-x86_64-cpu": (LINUX_X86, (), X86),
    "linux-x86_64-cuda": (LINUX_X86, ("cuda",), X86),
    "linux-x86_64-jax": (LINUX_X86, ("jax",), X86),
    "linux-x86_64-jax-cuda": (LINUX_X86, ("jax-cuda",), X86),
    "linux-aarch64": (LINUX_ARM, (), ARM),
    "linux-aarch64-jax": (LINUX_ARM, ("jax",), ARM),
    "macos-arm64": (MACOS_ARM, (), MAC),
    "macos-arm64-jax": (MACOS_ARM, ("jax",), MAC),
}


def selected(platform: str) -> list[Requirement]:
    """The heavy requirements (backends, their builds) this platform + extras install."""
    env, extras, _ = PLATFORMS[platform]
    out = []
    for group in ("", *extras):
        extra = PYPROJECT["optional-dependencies"].get(group, [])
        lines = PYPROJECT["dependencies"] if not group else extra
        for line in lines:
            req = Requirement(line)
            if req.name in HEAVY and (
                req.marker is None or req.marker.evaluate({**env, "extra": group})
            ):
                out.append(req)
    return out


def table(platform: str) -> set[str]:
    return {f"{r.name}{'[' + ','.join(sorted(r.extras)) + ']' if r.extras else ''}{r.specifier}"
            for r in selected(platform)}  # fmt: skip


EXPECTED = {
    "linux-x86_64-cpu": {"tensorflow-cpu==2.21.*"},
    # tensorflow[and-cuda] installs beside tensorflow-cpu; ./bootstrap removes the latter.
    "linux-x86_64-cuda": {"tensorflow-cpu==2.21.*", "tensorflow[and-cuda]==2.21.*"},
    "linux-x86_64-jax": {"tensorflow-cpu==2.21.*", "jax[cpu]>=0.10"},
    "linux-x86_64-jax-cuda": {"tensorflow-cpu==2.21.*", "jax[cuda12]>=0.10"},
    "linux-aarch64": {"tensorflow==2.21.*"},
    "linux-aarch64-jax": {"tensorflow==2.21.*", "jax[cpu]>=0.10"},
    "macos-arm64": {"tensorflow==2.21.*"},
    "macos-arm64-jax": {"tensorflow==2.21.*", "jax[cpu]>=0.10"},
}


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_each_platform_gets_one_tensorflow_build(platform: str) -> None:
    assert table(platform) == EXPECTED[platform]


def test_torch_is_only_an_extra() -> None:
    """The default install never pulls torch (from PyPI on Linux x86_64: the CUDA build)."""
    for platform in PLATFORMS:
        assert not any(r.name == "torch" for r in selected(platform)), platform
    extras = PYPROJECT["optional-dependencies"]
    assert extras["gp"] == extras["torch"] == ["torch==2.13.0"]  # the GPSampler's tested version
    assert any(Requirement(r).name == "jax" for r in extras["test"])  # CI tests the JAX backend


def test_gp_sampler_without_torch_says_which_extra() -> None:
    """In a process where torch cannot be imported, ``sampler: gp`` names the extra."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"  # as if not installed: find_spec then raises
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'torch' else real(n, *a)\n"
        "from hpo.samplers import make_sampler\n"
        "from hpo.errors import ConfigError\n"
        "try:\n"
        "    make_sampler('gp', 0)\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "sampler 'gp' needs torch: pip install 'hpo[gp]'", out.stderr


def dry_run(platform: str, requirements: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    """What pip would install for ``requirements`` on ``platform``: wheels only, from
    PyPI only, without dependencies (each report carries the wheel's Requires-Dist)."""
    _, _, tags = PLATFORMS[platform]
    cmd = [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--quiet",
           "--no-deps", "--ignore-installed", "--report", "-", "--target", str(tmp_path / "t"),
           "--python-version", "3.11", "--only-binary=:all:",
           "--index-url", "https://pypi.org/simple"]  # fmt: skip
    for tag in tags:
        cmd += ["--platform", tag]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # this machine's local mirrors and constraints off
    out = subprocess.run(
        [*cmd, *requirements], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"{platform}: {requirements}: {out.stderr[-1500:]}"
    installs: list[dict[str, Any]] = json.loads(out.stdout)["install"]
    return installs


def _name(item: dict[str, Any]) -> str:
    return str(item["metadata"]["name"]).replace("_", "-").lower()


def _nvidia(item: dict[str, Any], extra: str | None) -> list[str]:
    """The NVIDIA CUDA wheels a wheel requires, plainly (None) or with an extra."""
    out = []
    for line in item["metadata"].get("requires_dist", []):
        req = Requirement(line)
        env = {**LINUX_X86, "extra": extra or ""}
        if req.name.startswith("nvidia-") and (req.marker is None or req.marker.evaluate(env)):
            out.append(req.name)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_a_wheel_exists_for_each_selected_requirement(platform: str, tmp_path: Path) -> None:
    wanted = {r.name: f"{r.name}{r.specifier}" for r in selected(platform)}
    items = {_name(i): i for i in dry_run(platform, list(wanted.values()), tmp_path)}
    assert set(items) == set(wanted)
    for item in items.values():
        wheel = str(item["download_info"]["url"]).rsplit("/", 1)[-1]
        assert wheel.endswith(".whl") and ("cp311" in wheel or "py3" in wheel), wheel
    if platform == "linux-x86_64-cpu":  # the CPU path: no CUDA wheels behind TensorFlow
        assert _nvidia(items["tensorflow-cpu"], None) == []
    if platform == "linux-x86_64-cuda":  # hpo[cuda]: NVIDIA's CUDA wheels come with it
        assert "nvidia-cudnn-cu12" in _nvidia(items["tensorflow"], "and-cuda")


@pytest.mark.slow
def test_torch_from_pypi_is_the_cuda_build_on_linux_x86_64(tmp_path: Path) -> None:
    """Why torch is an extra and ./bootstrap takes it from PyTorch's CPU index."""
    (torch,) = dry_run("linux-x86_64-cpu", ["torch==2.13.0"], tmp_path)
    assert "nvidia-cudnn-cu12" in _nvidia(torch, None) or any(
        n.startswith("nvidia-") for n in _nvidia(torch, None)
    )
