"""An offline wheelhouse of hpo and its Python dependencies for a GPU machine.

    python benchmarks/wheelhouse.py [--out wheelhouse] [--python-version 3.12] [--max-mb 60]

A GPU machine without internet already has its backend (JAX, PyTorch, CUDA
wheels) and a scientific stack; it lacks hpo, Keras, Optuna and the storage
and report libraries. This downloads, for the target's Python on manylinux
x86_64 and binary wheels only, hpo's dependencies minus TensorFlow (the
target brings its own backend) minus the packages the target image already
holds (``ON_TARGET``), builds hpo's own wheel and the pure-Python wheels PyPI
has only as source (GPyOpt), and writes ``requirements.txt`` beside them.
On the target:

    pip install --no-index --find-links wheelhouse -r wheelhouse/requirements.txt
    pip install --no-index --no-deps wheelhouse/hpo-*.whl

(``--no-deps`` for hpo itself because its metadata requires tensorflow-cpu on
Linux x86_64, which the GPU machine replaces with its own backend.)
Prints the wheels kept, the ones left out and the total size; fails above
``--max-mb``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]

# Python packages of the GPU image ('cuda'), as read on such a machine in 2026-11.
# hpo's requirements satisfied by these are not shipped; the installed copies serve.
_TARGET_IMAGE = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl
meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile
nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime
onnxscript opencv-python-headless opt-einsum opt-einsum-fx optax optimistix orbax-checkpoint
packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil py-cpuinfo pyarrow pybind11 pygments pyparsing pyproject-hooks
pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentence-transformers
sentencepiece setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken
timm tokenizers toolz torch torch-geometric torchaudio torchdiffeq torchmetrics torchvision
tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
"""
ON_TARGET = frozenset(_TARGET_IMAGE.split())
# Kept even when the target has them: hpo bounds them from above (setuptools<82 for GPyOpt).
ALWAYS_SHIP = frozenset({"setuptools"})
# On PyPI only as source; pure Python, so one wheel built here fits every platform.
SOURCE_ONLY = ("gpyopt==1.2.6",)
BACKEND_PACKAGES = ("tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> str:
    return normalize(path.name.split("-")[0])


def requirements() -> list[str]:
    """hpo's dependencies from pyproject.toml, the Keras backends left out."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    keep = []
    for dep in deps:
        name = normalize(re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0])
        if name not in BACKEND_PACKAGES:
            keep.append(dep)
    return keep


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "wheelhouse")
    p.add_argument("--python-version", default="3.12")
    p.add_argument("--max-mb", type=float, default=60.0)
    p.add_argument("--ship-all", action="store_true", help="keep what the target already has")
    a = p.parse_args()
    abi = "cp" + a.python_version.replace(".", "")
    reqs = requirements()
    source_names = {normalize(s.split("==")[0]) for s in SOURCE_ONLY}
    binary = [r for r in reqs if normalize(re.split(r"[<>=!~;\[\s]", r)[0]) not in source_names]
    if a.out.exists():
        shutil.rmtree(a.out)
    a.out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        everything = Path(tmp)
        platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
        target = ["--python-version", a.python_version, "--implementation", "cp", "--abi", abi]
        for plat in platforms:
            target += ["--platform", plat]
        pip("download", "-q", "--only-binary=:all:", *target, "-d", str(everything), *binary)
        pip("wheel", "-q", "--no-deps", "-w", str(everything), *SOURCE_ONLY)
        pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(everything), str(ROOT))
        kept: list[Path] = []
        left: list[Path] = []
        for whl in sorted(everything.glob("*.whl")):
            name = wheel_name(whl)
            if not a.ship_all and name in ON_TARGET and name not in ALWAYS_SHIP:
                left.append(whl)
            else:
                kept.append(Path(shutil.copy2(whl, a.out / whl.name)))
        (a.out / "requirements.txt").write_text("\n".join(reqs) + "\n")
    total = sum(w.stat().st_size for w in kept) / 1e6
    print(
        f"\nwheelhouse {a.out}: {len(kept)} wheels, {total:.1f} MB "
        f"(Python {a.python_version}, manylinux x86_64)"
    )
    for whl in sorted(kept, key=lambda w: -w.stat().st_size):
        print(f"  {whl.stat().st_size / 1e6:6.2f} MB  {whl.name}")
    print(
        f"left out, already on the GPU image ({len(left)}): "
        + ", ".join(wheel_name(w) for w in left)
    )
    print("left out, the target's own backend: " + ", ".join(BACKEND_PACKAGES))
    if total > a.max_mb:
        sys.exit(f"--max-mb: the wheelhouse is {total:.1f} MB, above {a.max_mb:g} MB")


if __name__ == "__main__":
    main()
