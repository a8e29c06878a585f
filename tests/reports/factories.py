"""Studies with hpo's attributes, built directly with Optuna for report tests."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import optuna

from hpo import keys

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

CLASSES = ["Mild_Demented", "Moderate_Demented", "Non_Demented"]
MACHINE = {
    "cpu": "AMD EPYC 9654 96-Core Processor",
    "machine": "x86_64",
    "system": "Linux 6.8.0",
    "simd": ["avx", "avx2", "avx512f", "fma"],
    "flags_sha256": "25fc08b1fed3d885",
    "cpu_count": 16,
    "usable_cpus": 8,
    "thread_env": {"OMP_NUM_THREADS": "4"},
}


def build_study(
    storage: str | BaseStorage,
    name: str,
    *,
    n_trials: int = 12,
    seed: int = 0,
    sampler: str = "tpe",
    campaign: str | None = None,
    repeat: int = 0,
    quality: float = 0.0,
    classes: list[str] = CLASSES,
    param_names: tuple[str, str] = ("learning_rate", "dropout"),
    metric: str = "macro_f1",
    direction: Literal["maximize", "minimize"] = "maximize",
    optimum: float | None = None,
    extra_params: int = 0,
) -> optuna.Study:
    rng = np.random.default_rng(seed)
    study = optuna.create_study(study_name=name, storage=storage, direction=direction)
    study.set_user_attr(
        keys.STUDY_CONFIG,
        {
            "study": {"name": name},
            "model": {"backbone": "mobilenet_v2", "weights": "imagenet"},
            "training": {"head_epochs": 3, "finetune_epochs": 2},
            "objective": {"metric": metric},
        },
    )
    study.set_user_attr(keys.STUDY_SAMPLER, {"name": sampler, "seed": seed, "options": {}})
    study.set_user_attr(keys.STUDY_PRUNER, {"name": "median", "options": {}})
    study.set_user_attr(keys.STUDY_VERSIONS, {"hpo": "0.1.0", "optuna": optuna.__version__})
    study.set_user_attr(
        keys.STUDY_FINGERPRINT,
        {
            "sha256": "ab" * 32,
            "source": "directory",
            "class_names": classes,
            "class_counts": {c: 10 * (i + 1) for i, c in enumerate(classes)},
            "split_counts": {
                s: {c: i + 1 for i, c in enumerate(classes)} for s in ("train", "val", "test")
            },
            "n_images": 60,
            "input_shape": [32, 32, 3],
        },
    )
    study.set_user_attr(keys.STUDY_MACHINE, MACHINE)
    if optimum is not None:
        study.set_user_attr(keys.STUDY_OPTIMUM, optimum)
    if campaign is not None:
        study.set_user_attr(keys.STUDY_CAMPAIGN, campaign)
        study.set_user_attr(keys.STUDY_REPEAT, repeat)
    start = dt.datetime(2026, 1, 1, 12, 0, 0)
    lr_name, drop_name = param_names
    dists = {
        lr_name: optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
        drop_name: optuna.distributions.FloatDistribution(0.0, 0.6),
        "batch_size": optuna.distributions.CategoricalDistribution([16, 32]),
        **{
            f"extra_{k}": optuna.distributions.FloatDistribution(0.0, 1.0)
            for k in range(extra_params)
        },
    }
    for i in range(n_trials):
        lr = float(10 ** rng.uniform(-5, -1))
        drop = float(rng.uniform(0, 0.6))
        value = float(
            min(
                1.0,
                max(
                    0.0,
                    0.9
                    - abs(math.log10(lr) + 3) / 6
                    - abs(drop - 0.2)
                    + quality
                    + rng.normal(0, 0.01),
                ),
            )
        )
        state = optuna.trial.TrialState.COMPLETE
        if i % 5 == 4:
            state = optuna.trial.TrialState.PRUNED
        if i % 7 == 6:
            state = optuna.trial.TrialState.FAIL
        n = len(classes)
        user: dict[str, Any] = {
            keys.WORKER: f"gpu{i % 2}-w0",
            keys.DEVICE: f"GPU:{i % 2}",
            keys.HOST: "node1",
            keys.TRAIN_SECONDS: 10.0 + i,
            keys.OVERHEAD_SECONDS: 0.5 + 0.1 * i,
            keys.SUGGEST_SECONDS: 0.01 * (1 + (sampler == "gp")),
        }
        if state == optuna.trial.TrialState.COMPLETE:
            user.update(
                {
                    keys.METRICS: {"macro_f1": value, "accuracy": value, "roc_auc": 0.9},
                    keys.F1_PER_CLASS: [value] * n,
                    keys.CONFUSION: [[5 if r == c else 1 for c in range(n)] for r in range(n)],
                    keys.ROC_CURVES: [{"fpr": [0, 0.2, 1], "tpr": [0, 0.8, 1], "auc": 0.85}] * n,
                    keys.EPOCHS: 5,
                }
            )
        if state == optuna.trial.TrialState.FAIL:
            user[keys.FAIL_REASON] = "out of memory: <b>OOM</b>"
        trial = optuna.trial.create_trial(
            params={
                lr_name: lr,
                drop_name: drop,
                "batch_size": 16 if i % 2 else 32,
                **{f"extra_{k}": float(rng.uniform()) for k in range(extra_params)},
            },
            distributions=dists,
            value=value if state == optuna.trial.TrialState.COMPLETE else None,
            state=state,
            user_attrs=user,
            intermediate_values={e: value * (e + 1) / 5 for e in range(5 if i % 5 != 4 else 2)},
        )
        trial.datetime_start = start + dt.timedelta(minutes=3 * i)
        trial.datetime_complete = start + dt.timedelta(minutes=3 * i + 2)
        study.add_trial(trial)
    return study
