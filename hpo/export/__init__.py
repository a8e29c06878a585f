"""From the best trial to a model a clinic can check.

``export_model`` retrains a trial's parameters, evaluates the model once on
the held-out test split (bootstrap intervals), and writes ``model.keras``,
``splits.json`` (content hashes of the study's images per split),
``model.json`` (metadata and the model's sha256) and ``model_card.html``
(metrics, confusion matrix, ROC curves, Grad-CAM examples), after checking
the retrained model's validation score against the trial's (``_reproduce``).
The recipe is the trial's own record (``_recipe``).
``predict_files`` checks the sha256, loads in Keras safe mode and classifies
images, marking those that belong to the study's splits. TensorFlow is
imported only when a model is trained or loaded.
"""

from __future__ import annotations

from hpo.export._card import GradCamSample, card_figures, render_card
from hpo.export._evaluate import Estimate, TestMetrics, evaluate_test
from hpo.export._export import ExportResult, export_model, record_test_use
from hpo.export._gradcam import GradCam, GradCamTarget, overlay_png
from hpo.export._integrity import (
    CARD_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ModelInfo,
    load_exported,
    read_metadata,
    sha256_file,
    verify_model_file,
)
from hpo.export._predict import Predictions, collect_images, decode_images, predict_files
from hpo.export._recipe import Recipe, trial_recipe
from hpo.export._reproduce import Noise, Reproduction, bootstrap_se, compare_validation
from hpo.export._retrain import TRAIN_ON, check_dataset, select_trial
from hpo.export._splits import SPLITS_FILE, image_hash

__all__ = [
    "CARD_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "SPLITS_FILE",
    "TRAIN_ON",
    "Estimate",
    "ExportResult",
    "GradCam",
    "GradCamSample",
    "GradCamTarget",
    "ModelInfo",
    "Noise",
    "Predictions",
    "Recipe",
    "Reproduction",
    "TestMetrics",
    "bootstrap_se",
    "card_figures",
    "check_dataset",
    "collect_images",
    "compare_validation",
    "decode_images",
    "evaluate_test",
    "export_model",
    "image_hash",
    "load_exported",
    "overlay_png",
    "predict_files",
    "read_metadata",
    "record_test_use",
    "render_card",
    "select_trial",
    "sha256_file",
    "trial_recipe",
    "verify_model_file",
]
