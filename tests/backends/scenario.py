"""One backend's share of tests/backends: run in a fresh process per Keras backend.

    python -m tests.backends.scenario BACKEND OUT [OTHER_MODEL_DIR ...]

Keras fixes its backend at first import, so each backend needs its own
process. This one selects BACKEND through the study file's
``training.backend`` (``KERAS_BACKEND`` unset), trains for real and writes
what the tests assert on to OUT/BACKEND/result.json; it also saves the digits
model (OUT/BACKEND/model.keras plus probe images and their probabilities) and
loads each OTHER_MODEL_DIR's model, saved under another backend, in safe mode.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def config(backend: str, **sections: Any) -> Any:
    from hpo.config import load_config, validate_config

    data = load_config(REPO / "search_spaces" / "quickstart.yaml").to_dict()
    for section, values in sections.items():
        data[section].update(values)
    data["training"]["backend"] = backend
    return validate_config(data)


def digits(backend: str, out: Path) -> tuple[dict[str, Any], Any]:
    """The quickstart study's recipe with good fixed parameters: macro F1 on validation."""
    from hpo.config import HYPERPARAMETER_DEFAULTS
    from hpo.data import load_dataset
    from hpo.training import train_and_evaluate

    cfg = config(backend, training={"head_epochs": 3})
    dataset = load_dataset(cfg.dataset)
    params = {**HYPERPARAMETER_DEFAULTS, "learning_rate": 3e-3, "batch_size": 32, "dropout": 0.1}
    result = train_and_evaluate(cfg, dataset, params, keep_model=True)
    return {
        "macro_f1": result.evaluation.scalars()["macro_f1"],
        "backend": result.backend,
        "seconds": result.timing["total"],
    }, (result.model, dataset)


def export(model: Any, dataset: Any, folder: Path) -> None:
    """Save as the export does, with probe images and this backend's probabilities."""
    from hpo.export._export import _save_model
    from hpo.training import predict_proba

    folder.mkdir(parents=True, exist_ok=True)
    _save_model(model, folder)
    probe = dataset.val.x[:64]
    np.savez(folder / "probe.npz", x=probe, proba=predict_proba(model, probe))


def load_others(dirs: list[str]) -> dict[str, float]:
    """Max |difference| between each other backend's saved probabilities and ours."""
    from hpo.export._integrity import MODEL_FILE, load_model_safely
    from hpo.training import predict_proba

    out = {}
    for d in dirs:
        folder = Path(d)
        probe = np.load(folder / "probe.npz")
        model = load_model_safely(folder / MODEL_FILE)
        mine = predict_proba(model, probe["x"])
        out[folder.name] = float(np.abs(mine - probe["proba"]).max())
    return out


def cached_vs_images(backend: str, out: Path) -> dict[str, Any]:
    """tests/training/test_cached.py's agreement check, on this backend."""
    from hpo import cache as cache_mod
    from hpo.config import HYPERPARAMETER_DEFAULTS
    from hpo.data import load_dataset
    from hpo.training import clear_session, train_and_evaluate

    small = {"source": "digits", "image_size": 16, "channels": 1}
    params = {**HYPERPARAMETER_DEFAULTS, "batch_size": 16, "unfrozen_layers": 4}
    pre = config(backend, dataset={**small, "max_per_class": 60}, training={"head_epochs": 1})
    first = train_and_evaluate(
        pre, load_dataset(pre.dataset), {**params, "learning_rate": 3e-3}, keep_model=True
    )
    weights = out / "small_cnn.weights.h5"
    first.model.get_layer("small_cnn").save_weights(weights)
    clear_session()

    def run(mode: str) -> Any:
        cfg = config(
            backend,
            dataset={**small, "max_per_class": 30},
            model={"weights": str(weights)},
            training={
                "head_epochs": 2,
                "finetune_epochs": 2,
                "feature_cache": mode,
                "cache_dir": str(out / "cache"),
            },
        )
        result = train_and_evaluate(cfg, load_dataset(cfg.dataset), params)
        clear_session()
        return result

    cache_mod.clear_memory()
    off, on = run("off"), run("on")
    return {"off": off.curve, "on": on.curve, "on_cache": on.cache, "off_cache": off.cache}


def gradcam(backend: str) -> dict[str, Any]:
    """tests/export/test_gradcam.py's bright/dark square check, on this backend."""
    from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
    from hpo.data import Dataset, Split
    from hpo.export import GradCam
    from hpo.training import train_and_evaluate
    from tests.export.test_gradcam import HALF, QUADRANT, SIZE, _images, _quadrant_shares

    rng = np.random.default_rng(0)
    dataset = Dataset(
        ["bright, top-left", "dark, top-right"],
        Split(*_images(160, rng)),
        Split(*_images(40, rng)),
        Split(*_images(40, rng)),
        sha256="synthetic",
        source="synthetic",
    )
    cfg = validate_config(
        {
            "study": {"name": "gradcam"},
            "dataset": {"source": "digits", "image_size": SIZE, "channels": 1},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 6, "backend": backend},
        }
    )
    params = {**HYPERPARAMETER_DEFAULTS, "learning_rate": 3e-3, "dropout": 0.0, "batch_size": 16}
    params["dense_units"] = 32
    result = train_and_evaluate(cfg, dataset, params, keep_model=True)
    test = dataset.test
    cam = GradCam(result.model)
    cam.check(test.x)
    heat, proba = cam.heatmaps(test.x, test.y)
    hits = 0
    for h, k in zip(heat, test.y, strict=True):
        shares = _quadrant_shares(h)
        peak = np.unravel_index(h.argmax(), h.shape)
        want = QUADRANT[int(k)]
        in_quadrant = (int(peak[0] >= HALF), int(peak[1] >= HALF)) == want
        hits += int(in_quadrant and shares[want] == shares.max() and shares[want] > 0.4)
    default, _ = cam.heatmaps(test.x)
    return {
        "accuracy": float((proba.argmax(axis=1) == test.y).mean()),
        "hits": hits,
        "n": len(test),
        "layer": cam.target.layer,
        "range": [float(heat.min()), float(heat.max())],
        "default_matches": bool(np.allclose(default, heat, atol=1e-5)),
    }


def objective_attr(backend: str) -> str:
    """The backend an Objective records on its trial."""
    import optuna

    from hpo import keys
    from hpo.data import load_dataset
    from hpo.objective import Objective

    cfg = config(
        backend,
        dataset={"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 10},
        training={"head_epochs": 1},
        pruner={"name": "none"},
    )
    study = optuna.create_study(direction="maximize")
    objective = Objective(cfg, load_dataset(cfg.dataset))
    study.optimize(objective, n_trials=1)
    return str(study.trials[0].user_attrs[keys.BACKEND])


def main(backend: str, out: Path, others: list[str]) -> None:
    from hpo.errors import HpoError
    from hpo.training import clear_session, configure_backend, loaded_backend

    t0 = time.perf_counter()
    result: dict[str, Any] = {"keras_before": "keras" in sys.modules}
    configure_backend(backend)
    result["loaded"] = loaded_backend()
    other = "torch" if backend != "torch" else "jax"
    try:
        configure_backend(other)
    except HpoError as exc:
        result["switch_refused"] = str(exc)
    timing: dict[str, float] = {}

    def timed(part: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            timing[part] = round(time.perf_counter() - start, 1)

    result["digits"], (model, dataset) = timed("digits", digits, backend, out)
    # Keras' own saving imports TensorFlow whenever it is installed; training must not.
    result["tensorflow_after_training"] = "tensorflow" in sys.modules
    timed("export", export, model, dataset, out / backend)
    result["cross"] = timed("cross", load_others, others)
    clear_session()
    result["cache"] = timed("cache", cached_vs_images, backend, out / backend)
    result["gradcam"] = timed("gradcam", gradcam, backend)
    clear_session()
    result["objective_backend"] = timed("objective", objective_attr, backend)
    result["timing"] = timing
    result["seconds"] = time.perf_counter() - t0
    (out / backend / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3:])
