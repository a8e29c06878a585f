"""What a trial costs beyond the model itself, and what the feature cache saves.

    python benchmarks/trial_overhead.py [--backbone mobilenet_v2] [--size 96]
        [--images 1000] [--head-epochs 2] [--finetune-epochs 2] [--unfrozen 30]
        [--trials 20] [--repeats 3] [--weights FILE] [--skip-study]
    python benchmarks/trial_overhead.py --gpu-throughput [--steps 40]

1. Harness overhead. hpo's trial (``train_and_evaluate``: two phases,
   per-epoch validation F1 for the pruner, metrics) against a plain
   hand-written Keras loop on the same model, data and epochs (compile, fit
   the head on the frozen backbone, unfreeze the top layers, compile, fit,
   predict the validation split once, macro F1), run alternately in one
   process, feature cache off. Target: ratio at most 1.05.
2. Feature cache. A study of ``--trials`` trials (TPE, seed 0) run by
   ``hpo run`` twice, ``training.feature_cache`` off and on, each in a fresh
   process and cache folder: wall time (TensorFlow start and data loading
   included), best and mean macro F1. Target: at least 3x faster at equal F1.
3. ``--gpu-throughput``: images per second of MobileNetV2 and ResNet50
   fine-tuning (whole backbone trainable, batch 64, 224 px) in float32 and
   in mixed precision (float16, bfloat16) with XLA. Keras only, so it runs
   on whichever Keras backend sees the GPU. Needs a GPU.

The backbone starts from ``--weights`` (a local weights file, e.g. Keras'
ImageNet ``*_notop.h5``); without one it is first trained for three epochs
on the digits training split, so that its features carry information and
F1 means something. The data are scikit-learn's digits, resized, in 3 channels.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import yaml


def study_dict(args: argparse.Namespace, weights: str, cache: str, name: str) -> dict[str, Any]:
    return {
        "study": {"name": name},
        "dataset": {
            "source": "digits",
            "image_size": args.size,
            "channels": 3,
            "max_per_class": args.images // 10,
        },
        "model": {"backbone": args.backbone, "weights": weights},
        "training": {
            "head_epochs": args.head_epochs,
            "finetune_epochs": args.finetune_epochs,
            "feature_cache": cache,
        },
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "dense_units": {"type": "categorical", "choices": [64, 128, 256]},
            "batch_size": 32,
            "unfrozen_layers": args.unfrozen,
            "finetune_lr_factor": 0.1,
        },
        "sampler": {"name": "tpe", "seed": 0},
        "pruner": {"name": "none"},
        "budget": {"trials": args.trials},
    }


def pretrain(args: argparse.Namespace, folder: Path) -> str:
    """Backbone weights from three epochs of whole-network training on digits.

    Batch-norm momentum is lowered for this warm-up only, so the moving
    statistics catch up within its few hundred steps; at Keras' 0.99 they
    would still be near their initial values and inference-mode features
    would carry no information.
    """
    import keras

    from hpo.config import validate_config
    from hpo.data import load_dataset
    from hpo.models import build_model

    cfg = validate_config(study_dict(args, "none", "off", "pretrain"))
    dataset = load_dataset(cfg.dataset)
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    head = {"dense_units": 128, "dropout": 0.2, "l1": 0.0, "l2": 0.0}
    model, backbone = build_model(
        args.backbone,
        input_shape=dataset.input_shape,
        n_classes=dataset.n_classes,
        weights=None,
        params=head,
    )
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.8
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(dataset.train.x, dataset.train.y, batch_size=32, epochs=3, verbose=0)
    pred = model.predict(dataset.val.x, verbose=0).argmax(axis=1)
    from sklearn.metrics import f1_score

    f1 = f1_score(dataset.val.y, pred, average="macro")
    path = folder / f"{args.backbone}_{args.size}.weights.h5"
    backbone.save_weights(path)
    print(
        f"pretrained {args.backbone} on the digits training split for 3 epochs in "
        f"{time.perf_counter() - t0:.0f} s (val macro F1 {f1:.3f})"
    )
    keras.backend.clear_session()
    return str(path)


# --------------------------------------------------------------------------
# 1. harness overhead


def plain_keras(cfg: Any, dataset: Any, params: dict[str, Any]) -> tuple[float, float]:
    """The hand-written loop a user would write: (seconds, validation macro F1)."""
    import keras
    from sklearn.metrics import f1_score

    from hpo.models import build_model, freeze, set_trainable_top
    from hpo.training import class_weights

    t0 = time.perf_counter()
    keras.utils.set_random_seed(cfg.training.seed)
    model, backbone = build_model(
        cfg.model.backbone,
        input_shape=dataset.input_shape,
        n_classes=dataset.n_classes,
        weights=cfg.model.resolved_weights,
        params=params,
        pooling=cfg.model.pooling,
    )
    cw = class_weights(dataset.train.y, dataset.n_classes)
    bs = int(params["batch_size"])
    lr = float(params["learning_rate"])
    freeze(backbone)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    model.fit(
        dataset.train.x,
        dataset.train.y,
        batch_size=bs,
        epochs=cfg.training.head_epochs,
        class_weight=cw,
        verbose=0,
    )
    set_trainable_top(backbone, int(params["unfrozen_layers"]))
    model.compile(
        keras.optimizers.Adam(lr * float(params["finetune_lr_factor"])),
        "sparse_categorical_crossentropy",
    )
    model.fit(
        dataset.train.x,
        dataset.train.y,
        batch_size=bs,
        epochs=cfg.training.finetune_epochs,
        class_weight=cw,
        verbose=0,
    )
    pred = model.predict(dataset.val.x, batch_size=256, verbose=0).argmax(axis=1)
    f1 = float(f1_score(dataset.val.y, pred, average="macro"))
    keras.backend.clear_session()
    return time.perf_counter() - t0, f1


PARTS: list[dict[str, float]] = []


def ours(cfg: Any, dataset: Any, params: dict[str, Any]) -> tuple[float, float, float]:
    from hpo.training import clear_session, train_and_evaluate

    t0 = time.perf_counter()
    result = train_and_evaluate(cfg, dataset, params)
    clear_session()
    seconds = time.perf_counter() - t0
    PARTS.append(dict(result.timing))
    return seconds, result.evaluation.macro_f1, result.timing.get("predict", 0.0)


def overhead(args: argparse.Namespace, weights: str) -> None:
    from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
    from hpo.data import load_dataset

    cfg = validate_config(study_dict(args, weights, "off", "overhead"))
    dataset = load_dataset(cfg.dataset)
    params = {
        **HYPERPARAMETER_DEFAULTS,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "unfrozen_layers": args.unfrozen,
        "finetune_lr_factor": 0.1,
    }
    ours(cfg, dataset, params)  # warm-up: first-call tracing and allocator growth
    plain_keras(cfg, dataset, params)
    rows: list[tuple[float, float, float, float, float]] = []
    for r in range(args.repeats):
        order = (ours, plain_keras) if r % 2 == 0 else (plain_keras, ours)
        got: dict[str, tuple[float, ...]] = {}
        for fn in order:
            got[fn.__name__] = fn(cfg, dataset, params)
        o, p = got["ours"], got["plain_keras"]
        rows.append((o[0], p[0], o[1], p[1], o[2]))
    t_ours = statistics.median(r[0] for r in rows)
    t_plain = statistics.median(r[1] for r in rows)
    print()
    print(f"1. trial vs plain keras.fit, {args.repeats} alternating pairs, feature cache off")
    print(f"   {'run':>4} {'hpo s':>8} {'plain s':>8} {'ratio':>6} {'hpo F1':>7} {'plain F1':>8}")
    for i, (a, b, fa, fb, _) in enumerate(rows):
        print(f"   {i:>4} {a:8.2f} {b:8.2f} {a / b:6.3f} {fa:7.3f} {fb:8.3f}")
    ratio = statistics.median(r[0] / r[1] for r in rows)
    print(
        f"   median ratio {ratio:.3f} (target <= 1.05); median seconds {t_ours:.2f} "
        f"against {t_plain:.2f}"
    )
    parts = PARTS[1:]  # without the warm-up
    keys = [k for k in parts[0] if k != "total"]
    shown = ", ".join(f"{k} {statistics.median(p.get(k, 0.0) for p in parts):.2f}" for k in keys)
    print(f"   hpo trial, median seconds per part: {shown}")
    print(
        "   (no pruner, so hpo validates once at the end, as the plain loop does; with a "
        "pruner it validates after every epoch)"
    )


# --------------------------------------------------------------------------
# 2. feature cache on vs off


def study_run(args: argparse.Namespace, weights: str, cache: str, root: Path) -> dict[str, Any]:
    import optuna

    name = f"cache-{cache}"
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study_dict(args, weights, cache, name)))
    url = f"sqlite:///{root / (name + '.db')}"
    env = {**os.environ, "HPO_CACHE_DIR": str(root / f"features-{cache}")}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "hpo", "run", str(path), "--storage", url, "--quiet"],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hpo run ({cache}) failed:\n{proc.stderr[-2000:]}")
    study = optuna.load_study(study_name=name, storage=url)
    values = [t.value for t in study.trials if t.value is not None]
    overheads = [float(t.user_attrs.get("overhead_seconds", 0.0)) for t in study.trials]
    return {
        "wall": wall,
        "best": max(values),
        "mean": statistics.fmean(values),
        "n": len(values),
        "overhead": statistics.median(overheads),
        "values": values,
    }


def cache_study(args: argparse.Namespace, weights: str, root: Path) -> None:
    off = study_run(args, weights, "off", root)
    on = study_run(args, weights, "on", root)
    same = np.abs(np.array(off["values"]) - np.array(on["values"])).max()
    print()
    print(
        f"2. {args.trials}-trial study (TPE seed 0), frozen {args.head_epochs} + fine-tune "
        f"{args.finetune_epochs} epochs, top {args.unfrozen} layers unfrozen"
    )
    print(f"   {'cache':>5} {'wall s':>8} {'best F1':>8} {'mean F1':>8} {'overhead s/trial':>17}")
    for label, r in (("off", off), ("on", on)):
        cells = f"{r['wall']:8.1f} {r['best']:8.4f} {r['mean']:8.4f} {r['overhead']:17.2f}"
        print(f"   {label:>5} {cells}")
    print(
        f"   speed-up {off['wall'] / on['wall']:.2f}x (target >= 3); "
        f"largest per-trial F1 difference {same:.4f}"
    )


# --------------------------------------------------------------------------
# 3. GPU throughput


def gpu_throughput(args: argparse.Namespace) -> None:
    """Keras only (no tf.data), so it runs on any Keras backend that sees a GPU."""
    import keras

    from hpo.models import build_model

    backend = keras.backend.backend()
    print(f"Keras {keras.__version__} on the {backend} backend")
    batch, size = 64, 224
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(batch * args.steps, size, size, 3)).astype(np.uint8)
    y = rng.integers(0, 4, size=batch * args.steps)
    head = {"dense_units": 256, "dropout": 0.2, "l1": 0.0, "l2": 0.0}
    # JAX always compiles with XLA; TensorFlow runs float32 eagerly-graphed without it.
    settings = [("float32", backend == "jax"), ("mixed_float16", True), ("mixed_bfloat16", True)]
    if backend == "tensorflow":
        settings.insert(1, ("float32", True))
    print(f"   {'backbone':<13} {'setting':<22} {'images/s':>9} {'vs first':>9}")
    for backbone in ("mobilenet_v2", "resnet50"):
        base_rate = None
        for policy, xla in settings:
            keras.backend.clear_session()
            keras.mixed_precision.set_global_policy(policy)
            model, net = build_model(
                backbone, input_shape=(size, size, 3), n_classes=4, weights=None, params=head
            )
            net.trainable = True
            model.compile(
                keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", jit_compile=xla
            )
            model.fit(x[: batch * 5], y[: batch * 5], batch_size=batch, epochs=1, verbose=0)
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            rate = len(x) / (time.perf_counter() - t0)
            base_rate = base_rate or rate
            label = policy + (" + XLA" if xla else "")
            print(f"   {backbone:<13} {label:<22} {rate:9.0f} {rate / base_rate:8.2f}x")
        keras.mixed_precision.set_global_policy("float32")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--head-epochs", type=int, default=2)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--unfrozen", type=int, default=30)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--weights", help="local backbone weights file")
    p.add_argument("--skip-study", action="store_true", help="only part 1")
    p.add_argument("--skip-overhead", action="store_true", help="only part 2")
    p.add_argument("--gpu-throughput", action="store_true")
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args()

    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.machine()}"
    )
    if args.gpu_throughput:
        gpu_throughput(args)
        return
    from hpo.training import configure_tensorflow

    configure_tensorflow()
    print(
        f"{args.backbone} at {args.size} px, {args.images} digits images (train/val/test "
        f"70/15/15), batch 32, frozen {args.head_epochs} + fine-tune {args.finetune_epochs} "
        f"epochs, top {args.unfrozen} layers unfrozen"
    )
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as tmp:
        root = Path(tmp)
        weights = args.weights or pretrain(args, root)
        if not args.skip_overhead:
            overhead(args, weights)
        if not args.skip_study:
            cache_study(args, weights, root)


if __name__ == "__main__":
    main()
