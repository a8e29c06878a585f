"""GPU workers: hpo's real worker path (``hpo launch``) against plain ``keras.fit``.

    python benchmarks/gpu_workers.py [--backends tensorflow,jax] [--models mobilenet_v2,resnet50]
        [--k 1,2,4] [--size 224] [--epochs 2] [--images 2048] [--storage URL]
    python benchmarks/gpu_workers.py --smoke      # CPU check: small_cnn, 32 px, K=1,2

For each installed Keras backend, backbone (random weights: nothing is
downloaded), image size and precision (float32, or ``mixed_precision:
float16`` with ``xla: on``) it runs ``hpo launch --gpus all
--workers-per-gpu K`` on a synthetic ``.npz`` it writes itself, then reads
back from the database each trial's stored ``images_per_second`` and
``train_seconds``: images per second per trial and in total, trials per
hour between the first trial's start and the last one's end, GPU
utilization and memory (``nvidia-smi -lms 500``). The baseline is a plain
``model.fit`` on the same model, images, batch size, epochs and backend in a
fresh process, timed the same way (the whole ``fit``, compilation included).
MobileNetV2 also runs at 128 px, where K=2 should give >= 1.5x the trials
per hour of K=1. Writes benchmarks/results/gpu_workers.txt.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "gpu_workers.txt"
BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = {
    "float32": {"mixed_precision": "off", "xla": "off"},
    "float16+xla": {"mixed_precision": "float16", "xla": "on"},
}
N_CLASSES = 4
BATCH = 64


def installed_backends() -> list[str]:
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "-"


def write_npz(path: Path, images: int, size: int, seed: int = 0) -> None:
    """Random RGB images with an imbalanced label mix, all three splits given."""
    import numpy as np

    rng = np.random.default_rng(seed)
    probs = np.array([0.5, 0.3, 0.15, 0.05])

    def split(n: int) -> tuple[Any, Any]:
        y = rng.choice(N_CLASSES, size=n, p=probs).astype(np.int64)
        y[:N_CLASSES] = np.arange(N_CLASSES)  # every class present in every split
        x = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
        return x, y

    arrays: dict[str, Any] = {}
    for name, n in (("train", images), ("val", max(images // 8, 16)), ("test", 16)):
        arrays[f"{name}_images"], arrays[f"{name}_labels"] = split(n)
    np.savez(path, **arrays)


def study_file(
    path: Path, *, npz: Path, model: str, size: int, epochs: int, backend: str, precision: str
) -> None:
    import yaml

    study = {
        "study": {"name": "gpu-workers"},
        "dataset": {"source": "npz", "path": str(npz), "image_size": size, "channels": 3},
        "model": {"backbone": model, "weights": "none"},
        "training": {
            "head_epochs": epochs,
            "finetune_epochs": 0,
            "class_weights": "balanced",
            "backend": backend,
            "feature_cache": "off",
            **PRECISIONS[precision],
        },
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
            "batch_size": {"type": "categorical", "choices": [BATCH]},
        },
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "budget": {"trials": 1},
    }
    path.write_text(yaml.safe_dump(study, sort_keys=False))


class GpuSampler:
    """``nvidia-smi -lms 500`` in the background; nothing when nvidia-smi is absent."""

    QUERY = "--query-gpu=index,utilization.gpu,memory.used"

    def __init__(self, out: Path) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GpuSampler:
        exe = shutil.which("nvidia-smi")
        if exe is not None:
            with self.out.open("wb") as fh:
                cmd = [exe, self.QUERY, "--format=csv,noheader,nounits", "-lms", "500"]
                self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def summary(self) -> str:
        """Mean utilization while busy and peak memory, per GPU: "0: 87% 12.3GiB"."""
        if self.proc is None:
            return "n/a"
        util: dict[str, list[int]] = {}
        mem: dict[str, int] = {}
        for line in self.out.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                continue
            util.setdefault(parts[0], []).append(int(parts[1]))
            mem[parts[0]] = max(mem.get(parts[0], 0), int(parts[2]))
        cells = []
        for gpu, values in sorted(util.items()):
            busy = [v for v in values if v > 0] or [0]
            cells.append(f"{gpu}:{statistics.mean(busy):.0f}%/{mem[gpu] / 1024:.1f}G")
        return " ".join(cells) or "none"


def launch(
    study: Path,
    url: str,
    *,
    backend: str,
    gpus: str,
    k: int,
    trials: int,
    name: str,
    log: Path,
) -> tuple[int, float]:
    """Run ``hpo launch``; its exit code and wall seconds."""
    cmd = [sys.executable, "-m", "hpo", "launch", str(study), "--gpus", gpus]
    cmd += ["--workers-per-gpu", str(k), "-n", str(trials), "--storage", url]
    cmd += ["--study-name", name, "-q", "--max-trials-per-process", "0"]
    # The worker loop picks the backend from KERAS_BACKEND before it reads
    # training.backend, so both are set to the same name.
    env = {**os.environ, "KERAS_BACKEND": backend}
    t0 = time.perf_counter()
    with log.open("wb") as fh:
        run = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    rc = run.returncode
    return rc, time.perf_counter() - t0


def read_trials(url: str, name: str) -> dict[str, float]:
    """Throughput from the stored trials alone, as a report would see it."""
    import optuna
    from optuna.trial import TrialState

    from hpo import keys

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=name, storage=url).trials
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return {"done": 0, "failed": len(trials)}
    ips = [float(t.user_attrs[keys.IMAGES_PER_SECOND]) for t in done]
    secs = [float(t.user_attrs[keys.TRAIN_SECONDS]) for t in done]
    first = min(t.datetime_start for t in done if t.datetime_start)
    last = max(t.datetime_complete for t in done if t.datetime_complete)
    span = max((last - first).total_seconds(), 1e-9)
    return {
        "done": len(done),
        "failed": len(trials) - len(done),
        "ips_trial": statistics.median(ips),
        "ips_total": sum(i * s for i, s in zip(ips, secs, strict=True)) / span,
        "per_hour": len(done) / span * 3600.0,
    }


def baseline(npz: Path, model: str, size: int, epochs: int, backend: str, precision: str) -> float:
    """Plain keras.fit images/s in a fresh process (the backend is fixed per process)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    gpu = env.get("CUDA_VISIBLE_DEVICES", "0" if shutil.which("nvidia-smi") else "")
    env["CUDA_VISIBLE_DEVICES"] = gpu.split(",")[0]
    args = json.dumps([str(npz), model, size, epochs, precision])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_plain-fit", args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("IPS ")]
    if out.returncode != 0 or not lines:
        print(f"  plain fit failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return float("nan")
    return float(lines[-1].split()[1])


def plain_fit(spec: str) -> None:
    """The baseline's child: hpo's model, compiled and fitted the textbook way."""
    npz, model_name, size, epochs, precision = json.loads(spec)
    import keras
    import numpy as np

    from hpo.hyperparameters import DEFAULTS
    from hpo.models import build_model

    settings = PRECISIONS[precision]
    if settings["mixed_precision"] == "float16":
        keras.mixed_precision.set_global_policy("mixed_float16")
    with np.load(npz) as data:
        x = data["train_images"].astype("float32")
        y = data["train_labels"]
    model, _ = build_model(
        model_name,
        input_shape=(size, size, 3),
        n_classes=N_CLASSES,
        weights=None,
        params={**DEFAULTS, "batch_size": BATCH, "learning_rate": 3e-4},
    )
    jit: bool | str = settings["xla"] == "on" or (keras.backend.backend() == "jax")
    if keras.backend.backend() == "torch":
        jit = False  # Keras' torch backend has no XLA
    model.compile(
        optimizer=keras.optimizers.Adam(3e-4),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit,
    )
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    print(f"IPS {len(y) * epochs / (time.perf_counter() - t0):.2f}", flush=True)


def conditions(backends: list[str], gpus_flag: str) -> list[str]:
    lines = [
        f"# {platform.node()}: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; hpo launch --gpus {gpus_flag}"
    ]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        lines.append("# GPU: none (nvidia-smi absent: no utilization or memory sampled)")
    else:
        q = [exe, "--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader"]
        for row in subprocess.run(q, capture_output=True, text=True).stdout.splitlines():
            lines.append(f"# GPU {row.strip()}")
    per_backend = {"tensorflow": ["tensorflow", "tensorflow-cpu"], "jax": ["jax", "jaxlib"]}
    dists = ["keras", "optuna", "numpy"]
    for b in backends:
        dists += per_backend.get(b, [b])
    found = [f"{d} {version(d)}" for d in dists if version(d) != "-"]
    lines.append("# " + ", ".join(found))
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default=",".join(installed_backends()))
    p.add_argument("--models", default="mobilenet_v2,resnet50")
    p.add_argument("--k", default="1,2,4", help="workers per GPU")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--goal-size", type=int, default=128, help="extra MobileNetV2 size; 0: none")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--trials-per-worker", type=int, default=2)
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--gpus", default="all")
    p.add_argument("--storage", default=None, help="default: a SQLite file in a temp folder")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--_plain-fit", dest="plain_fit", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.plain_fit:
        plain_fit(a.plain_fit)
        return
    if a.smoke:
        a.models, a.k, a.size, a.goal_size, a.epochs = "small_cnn", "1,2", 32, 0, 1
        a.images, a.gpus, a.trials_per_worker = min(a.images, 256), "none", 2
    backends = [b for b in a.backends.split(",") if b]
    missing = [b for b in backends if b not in installed_backends()]
    if missing or not backends:
        sys.exit(
            f"--backends: {','.join(missing) or '(empty)'} not installed; have "
            f"{','.join(installed_backends()) or 'none'}"
        )
    from hpo.gpus import discover_gpus

    n_gpus = (
        1
        if a.gpus == "none"
        else (len(discover_gpus()) if a.gpus == "all" else len(a.gpus.split(",")))
    )
    if n_gpus == 0:
        sys.exit("--gpus all: no GPU found (nvidia-smi lists none); use --smoke or --gpus none")
    cases = [(m, a.size) for m in a.models.split(",")]
    if a.goal_size and "mobilenet_v2" in a.models.split(",") and a.goal_size != a.size:
        cases.append(("mobilenet_v2", a.goal_size))
    ks = [int(k) for k in a.k.split(",")]
    head = conditions(backends, a.gpus)
    if a.smoke:
        head.insert(0, "# CPU SMOKE RUN (--smoke): checks the tooling end to end, not a GPU figure")
    head.append(
        f"# {a.images} train images, batch {BATCH}, {a.epochs} epoch(s), random weights, "
        f"{a.trials_per_worker} trial(s) per worker; img/s = stored images_per_second "
        "(whole fit incl. compile)"
    )
    title = (
        f"{'backend':<10} {'model':<13} {'px':>4} {'precision':<12} {'K':>2} "
        f"{'ok/fail':>7} {'img/s/trial':>11} {'img/s all':>9} {'vs fit':>6} "
        f"{'trials/h':>8} {'x K=1':>5} {'wall s':>6}  gpu util/mem"
    )
    lines = [*head, title, "-" * len(title)]
    for ln in lines:
        print(ln, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="hpo_gpu_bench_"))
    url = a.storage or f"sqlite:///{tmp}/bench.db"
    for backend in backends:
        for model, size in cases:
            npz = tmp / f"data_{size}.npz"
            if not npz.exists():
                write_npz(npz, a.images, size)
            for precision in a.precisions.split(","):
                plain = baseline(npz, model, size, a.epochs, backend, precision)
                row = f"{backend:<10} {model:<13} {size:>4} {precision:<12}"
                fit_line = f"{row} {'fit':>2} {'':>7} {plain:>11.1f}"
                print(fit_line, flush=True)
                lines.append(fit_line)
                one = None
                for k in ks:
                    study = tmp / "study.yaml"
                    study_file(
                        study,
                        npz=npz,
                        model=model,
                        size=size,
                        epochs=a.epochs,
                        backend=backend,
                        precision=precision,
                    )
                    name = f"gpu-{uuid.uuid4().hex[:8]}"
                    budget = k * n_gpus * a.trials_per_worker
                    log = tmp / f"{name}.log"
                    with GpuSampler(tmp / f"{name}.smi") as smi:
                        rc, wall = launch(
                            study,
                            url,
                            backend=backend,
                            gpus=a.gpus,
                            k=k,
                            trials=budget,
                            name=name,
                            log=log,
                        )
                    try:
                        r = read_trials(url, name)
                    except KeyError:  # no study: the launch stopped before creating it
                        r = {"done": 0, "failed": 0}
                    if not r["done"]:
                        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                        msg = f"{row} {k:>2} launch rc={rc}, no finished trial: {tail}"
                        print(msg, flush=True)
                        lines.append(msg)
                        continue
                    one = one or r["per_hour"]
                    ok = f"{int(r['done'])}/{int(r['failed'])}"
                    line = (
                        f"{row} {k:>2} {ok:>7} {r['ips_trial']:>11.1f} "
                        f"{r['ips_total']:>9.1f} {r['ips_trial'] / plain:>5.2f}x "
                        f"{r['per_hour']:>8.0f} {r['per_hour'] / one:>4.2f}x {wall:>6.0f}  "
                        f"{smi.summary()}"
                    )
                    print(line, flush=True)
                    lines.append(line)
    lines.append(
        "# goals: K=1 img/s/trial >= 0.9x plain fit; K=2 trials/h >= 1.5x K=1 "
        f"({cases[-1][0]} at {cases[-1][1]} px)"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print(f"written {a.out}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
