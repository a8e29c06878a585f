"""Names of the attributes hpo stores on studies and trials.

The database is the single source of truth: reports, ``hpo best`` and
``hpo export`` read only these keys, so they are named once, here.
"""

from __future__ import annotations

# --- study user attrs ------------------------------------------------------
STUDY_CONFIG = "hpo:config"  # the resolved study file (dict, JSON-safe)
STUDY_FINGERPRINT = "hpo:dataset"  # {"sha256", "class_names", "class_counts", "split_counts", ...}
STUDY_VERSIONS = "hpo:versions"  # {"hpo", "optuna", "tensorflow", "keras", "numpy", ...}
STUDY_SAMPLER = "hpo:sampler"  # {"name", "seed", "options"}
STUDY_PRUNER = "hpo:pruner"  # {"name", "options"}
STUDY_CAMPAIGN = "hpo:campaign"  # campaign name, for sampler comparisons
STUDY_REPEAT = "hpo:repeat"  # repeat index inside a campaign
STUDY_TEST_USED = "hpo:test_used"  # list of {"at", "trial", "out"} written by export
STUDY_CREATED = "hpo:created"  # ISO timestamp
STUDY_MACHINE = "hpo:machine"  # creating host: {"cpu", "simd", "flags_sha256", "cpu_count", ...}
STUDY_EXECUTOR = "hpo:executor"  # the last launch: {"engine", "job_id", "workers", "at", ...}
STUDY_OPTIMUM = "hpo:optimum"  # benchmark studies: the problem's best value (float)

# --- trial user attrs ------------------------------------------------------
METRICS = "metrics"  # {"macro_f1", "weighted_f1", "accuracy", "balanced_accuracy", "roc_auc"}
F1_PER_CLASS = "f1_per_class"  # list[float], in class_names order
CONFUSION = "confusion_matrix"  # list[list[int]], rows = true class
ROC_CURVES = "roc_curves"  # list[{"fpr": [...], "tpr": [...], "auc": float|None}] per class
EPOCHS = "epochs"  # epochs actually run (both phases)
TRAIN_SECONDS = "train_seconds"
IMAGES_PER_SECOND = "images_per_second"
OVERHEAD_SECONDS = "overhead_seconds"  # time outside Keras fit/predict
HOST = "host"
PID = "pid"  # the worker process, to tell recycled workers apart
DEVICE = "device"  # "cpu" or "GPU:<index>"
BACKEND = "backend"  # the Keras backend the trial trained on: tensorflow, jax or torch
WORKER = "worker"  # "<host>:<pid>" or a launcher slot name
FAIL_REASON = "fail_reason"
N_PARAMS = "n_params"  # model parameters (trainable + not), when constraints cap them
PARAMS_FULL = "params_full"  # searched + fixed hyperparameters the trainer used
# What the trial trained, to rebuild it alone: {"input_shape", "dataset", "model",
# "training", "objective" (resolved study-file sections), "params", "sampler": {"name", "seed"}}
RECIPE = "recipe"
SUGGEST_SECONDS = "suggest_seconds"  # time the sampler spent on this trial
TIMING = "timing"  # seconds per part: build, data, cache, features, fit, predict, metrics, ...
FEATURE_CACHE = "feature_cache"  # {"features": "off|memory|disk|computed", "cut": ..., ...}
VISIBLE_DEVICES = "cuda_visible_devices"  # the worker's CUDA_VISIBLE_DEVICES: its physical GPU(s)
