"""``hpo export``: from the best trial to a checked model folder.

The order matters: everything that can be refused (study, trial, output
folder, changed data) is checked before training, and the test split is
predicted once, after training, and recorded on the study at that moment,
whatever happens to the files afterwards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo import keys
from hpo.errors import HpoError
from hpo.export._calibration import Calibration, calibrate
from hpo.export._card import GradCamSample, render_card
from hpo.export._evaluate import TestMetrics, evaluate_test
from hpo.export._integrity import (
    CARD_FILE,
    FORMAT,
    METADATA_FILE,
    MODEL_FILE,
    load_model_safely,
    sha256_file,
    write_atomic,
)
from hpo.export._recipe import trial_recipe
from hpo.export._reproduce import Reproduction, compare_validation
from hpo.export._retrain import TrainOn, check_dataset, retrain, select_trial
from hpo.export._splits import HASH, SPLITS_FILE, splits_document

if TYPE_CHECKING:
    import keras
    import optuna

    from hpo.config import DatasetSection
    from hpo.data import Dataset

OUTPUT_FILES = (MODEL_FILE, SPLITS_FILE, METADATA_FILE, CARD_FILE)
_RELOAD_ATOL = 1e-5
LIME_SAMPLES = 200  # perturbed copies per explained image


@dataclass(frozen=True)
class ExportResult:
    out: Path
    study: str
    trial: int
    metrics: TestMetrics
    test_proba: np.ndarray  # from the trained model before it was saved
    model_sha256: str
    reproduction: Reproduction
    recipe_source: str = "trial"  # "trial": its own stored recipe; "study": the study's file
    previous_test_uses: list[dict[str, Any]] = field(default_factory=list)
    calibration: Calibration | None = None

    @property
    def files(self) -> list[Path]:
        return [self.out / name for name in OUTPUT_FILES]


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise HpoError(f"--out: '{out}' exists and is not a folder")
    held = [name for name in OUTPUT_FILES if (out / name).exists()]
    if held and not overwrite:
        raise HpoError(
            f"--out: '{out}' already holds an export ({', '.join(held)}); "
            "choose another folder or pass --overwrite"
        )


def record_test_use(study: optuna.Study, trial: int, out: Path) -> list[dict[str, Any]]:
    """Append this use of the test split to the study; returns the earlier uses."""
    before = study.user_attrs.get(keys.STUDY_TEST_USED)
    earlier = [u for u in before if isinstance(u, dict)] if isinstance(before, list) else []
    entry = {
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "trial": trial,
        "out": str(out.resolve()),
    }
    study.set_user_attr(keys.STUDY_TEST_USED, [*earlier, entry])
    return earlier


def names_of_test_images(dataset: Dataset, cfg: DatasetSection) -> list[str]:
    """How a reader finds each test image: its file (relative to the dataset folder),
    its index in the ``.npz`` when the file gives the splits, else its place in the split."""
    test = dataset.test
    if test.ids is not None:
        return [str(name) for name in test.ids]
    if cfg.source == "npz" and cfg.path and cfg.max_per_class is None:
        with np.load(cfg.path, allow_pickle=False) as npz:
            given = "test_images" in npz.files and "val_images" in npz.files
        if given:
            return [f"{Path(cfg.path).name}: test_images[{i}]" for i in range(len(test))]
    return [f"test split image {i}" for i in range(len(test))]


def gradcam_samples(
    model: keras.Model,
    dataset: Dataset,
    per_class: int,
    names: list[str] | None = None,
    lime_samples: int = 0,
) -> tuple[list[GradCamSample], dict[str, Any]]:
    """The first ``per_class`` test images of each true class, explained
    by Grad-CAM and, with ``lime_samples``, by LIME for the same predicted class."""
    from hpo.export._gradcam import GradCam, overlay_png
    from hpo.export._lime import explain, lime_png, method

    info: dict[str, Any] = {
        "per_class": per_class,
        "layer": None,
        "backbone": None,
        "lime": method(lime_samples) if lime_samples > 0 and per_class > 0 else None,
    }
    if per_class <= 0:
        return [], info
    test = dataset.test
    picked = np.concatenate(
        [np.flatnonzero(test.y == k)[:per_class] for k in range(dataset.n_classes)]
    ).astype(np.int64)
    cam = GradCam(model)
    cam.check(test.x[picked])
    heat, proba = cam.heatmaps(test.x[picked])
    info.update(layer=cam.target.layer, backbone=cam.target.backbone)
    samples = [
        GradCamSample(
            index=int(i),
            true_class=int(test.y[i]),
            predicted_class=int(p.argmax()),
            probability=float(p.max()),
            png=overlay_png(test.x[i], h),
            name=names[i] if names is not None else f"test split image {i}",
            lime_png=lime_png(
                test.x[i],
                explain(model, test.x[i], int(p.argmax()), n_samples=lime_samples, seed=int(i)),
            )
            if lime_samples > 0
            else None,
        )
        for i, h, p in zip(picked, heat, proba, strict=True)
    ]
    return samples, info


def _save_model(model: keras.Model, out: Path) -> Path:
    """Save atomically as ``model.keras``: a reader never sees half a model."""
    partial = out / ".partial-model.keras"  # Keras insists on the .keras suffix
    try:
        model.save(partial)
        os.replace(partial, out / MODEL_FILE)
    finally:
        partial.unlink(missing_ok=True)
    return out / MODEL_FILE


def export_model(
    storage: str | optuna.storages.BaseStorage,
    study_name: str,
    out: str | Path,
    *,
    trial: int | None = None,
    train_on: TrainOn = "train",
    n_bootstrap: int = 1000,
    seed: int = 0,
    gradcam_per_class: int = 3,
    overwrite: bool = False,
    calibrate_temperature: bool = False,
    lime_samples: int = LIME_SAMPLES,
) -> ExportResult:
    """Retrain a trial, evaluate it once on the test split, write the model folder."""
    from hpo.data import load_dataset
    from hpo.storage import open_storage
    from hpo.studies import library_versions, load_existing, stored_config
    from hpo.training import predict_proba

    if n_bootstrap < 0:
        raise HpoError(f"--bootstrap: must be 0 or more, got {n_bootstrap}")
    if gradcam_per_class < 0:
        raise HpoError(f"--gradcam-per-class: must be 0 or more, got {gradcam_per_class}")
    if lime_samples < 0 or lime_samples == 1:
        raise HpoError(f"--lime-samples: must be 0 (off) or 2 or more, got {lime_samples}")
    if calibrate_temperature and train_on != "train":
        raise HpoError(
            f"--calibrate: needs a held-out validation split, but --train-on {train_on} "
            "trains on it; use --train-on train"
        )
    out = Path(out)
    _check_out(out, overwrite)
    store = open_storage(storage) if isinstance(storage, str) else storage
    study = load_existing(store, study_name)
    chosen = select_trial(study, trial)
    if stored_config(study).objective.benchmark is not None:
        raise HpoError(f"study '{study_name}' is a benchmark study: it trained no model to export")
    recipe = trial_recipe(study, chosen)
    config = recipe.config
    dataset = load_dataset(config.dataset)
    fingerprint = check_dataset(study, dataset)
    recipe.check_input(dataset)
    params = recipe.params

    model, trained = retrain(config, dataset, params, train_on)
    reproduction = compare_validation(
        study,
        chosen,
        config.objective.metric,
        trained.evaluation.scalars(),
        trained.evaluation.confusion_matrix,
        held_out=train_on == "train",
        seed=seed,
    )
    # The temperature is fitted on validation predictions only, before the test split is read.
    val_proba = predict_proba(model, dataset.val.x) if calibrate_temperature else None
    test_proba = predict_proba(model, dataset.test.x)
    earlier = record_test_use(study, chosen.number, out)
    metrics = evaluate_test(
        dataset.test.y, test_proba, dataset.class_names, n_bootstrap=n_bootstrap, seed=seed
    )

    out.mkdir(parents=True, exist_ok=True)
    model_path = _save_model(model, out)
    digest = sha256_file(model_path)
    shipped = load_model_safely(model_path)
    reloaded = predict_proba(shipped, dataset.test.x)
    if not np.allclose(reloaded, test_proba, atol=_RELOAD_ATOL):
        raise HpoError(
            f"{model_path}: the saved model predicts differently from the trained one "
            f"(max difference {np.abs(reloaded - test_proba).max():.2e}); export aborted"
        )
    samples, cam_info = gradcam_samples(
        shipped,
        dataset,
        gradcam_per_class,
        names_of_test_images(dataset, config.dataset),
        lime_samples,
    )
    calibration = calibrate(
        val_proba, dataset.val.y if calibrate_temperature else None, test_proba, dataset.test.y
    )
    splits = splits_document(dataset)
    write_atomic(out / SPLITS_FILE, splits)

    training = config.training
    metadata: dict[str, Any] = {
        "format": FORMAT,
        "model_file": MODEL_FILE,
        "model_sha256": digest,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "study": study.study_name,
        "trial": chosen.number,
        "search_value": chosen.value,
        "objective": config.objective.metric,
        "train_on": train_on,
        "backbone": config.model.backbone,
        "weights": config.model.resolved_weights,
        "pooling": config.model.pooling,
        "class_names": list(dataset.class_names),
        "input_shape": list(dataset.input_shape),
        "preprocessing": {
            "decode": "PIL, converted to L (1 channel) or RGB (3), bilinear resize",
            "pixels": "uint8 range 0-255; the model's first layer rescales",
        },
        "params": params,
        "training": {
            "head_epochs": training.head_epochs,
            "finetune_epochs": training.finetune_epochs,
            "class_weights": training.class_weights,
            "seed": training.seed,
            "augment": training.augment,
            "mixed_precision": training.mixed_precision,
            "epochs_run": trained.epochs,
        },
        "dataset": fingerprint,
        "validation": (
            trained.evaluation.scalars() if train_on == "train" else None
        ),  # train+val trained on the validation split: its score would mean nothing
        "validation_check": reproduction.to_dict(),
        "recipe": recipe.describe(),
        "splits": {"file": SPLITS_FILE, "sha256": hashlib.sha256(splits).hexdigest(), "hash": HASH},
        "metrics": metrics.to_dict(),
        "gradcam": cam_info,
        "calibration": calibration.to_dict(),
        "temperature": calibration.temperature,
        "test_used_before": len(earlier),
        "versions": library_versions(),
    }
    html = render_card(metadata=metadata, metrics=metrics, gradcam=samples, calibration=calibration)
    write_atomic(out / CARD_FILE, html.encode("utf-8"))
    # Written last: a folder with model.json is a complete export.
    write_atomic(out / METADATA_FILE, (json.dumps(metadata, indent=2) + "\n").encode("utf-8"))
    return ExportResult(
        out=out,
        study=study.study_name,
        trial=chosen.number,
        metrics=metrics,
        test_proba=test_proba,
        model_sha256=digest,
        reproduction=reproduction,
        recipe_source=recipe.source,
        previous_test_uses=earlier,
        calibration=calibration,
    )
