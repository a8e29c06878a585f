"""Pick the trial to export, check the data is the study's, retrain its parameters.

The retrained model uses exactly the searched recipe: the trial's own record
of it (``_recipe``: study-file sections and full parameters, searched and
fixed alike) and the same dataset, whose fingerprint must match the one the
search recorded. Whether it then scores what the trial scored is checked,
not assumed (``_reproduce``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from hpo import keys
from hpo.errors import DataError, HpoError
from hpo.results import best_trial

if TYPE_CHECKING:
    import keras
    import optuna

    from hpo.config import StudyConfig
    from hpo.data import Dataset
    from hpo.training import TrainResult

TrainOn = Literal["train", "train+val"]
TRAIN_ON: tuple[str, ...] = ("train", "train+val")


def select_trial(study: optuna.Study, number: int | None) -> optuna.trial.FrozenTrial:
    """The named trial, or the best complete one; it must be complete with full params.

    "Best" is ``hpo.results.best_trial``, in the study's direction: the trial
    ``hpo best`` and the report name.
    """
    from optuna.trial import TrialState

    if number is None:
        trial = best_trial(study)
        if trial is None:
            raise HpoError(f"study '{study.study_name}' has no complete trial to export")
    else:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not found:
            raise HpoError(f"study '{study.study_name}' has no trial {number}")
        trial = found[0]
        if trial.state != TrialState.COMPLETE:
            raise HpoError(
                f"trial {number} of '{study.study_name}' is {trial.state.name.lower()}, "
                "not complete; export a complete trial"
            )
    if not isinstance(trial.user_attrs.get(keys.PARAMS_FULL), dict):
        raise HpoError(
            f"trial {trial.number} of '{study.study_name}' has no '{keys.PARAMS_FULL}' "
            "(not run by an hpo worker); cannot rebuild its model"
        )
    return trial


def check_dataset(study: optuna.Study, dataset: Dataset) -> dict[str, Any]:
    """Refuse data whose content or splits differ from what the search saw."""
    stored = study.user_attrs.get(keys.STUDY_FINGERPRINT)
    if not isinstance(stored, dict) or not stored.get("sha256"):
        raise HpoError(
            f"study '{study.study_name}' has no dataset fingerprint; no trial loaded its data"
        )
    now = dataset.fingerprint()
    if stored.get("sha256") != now["sha256"]:
        raise DataError(
            f"the dataset changed since study '{study.study_name}' ran (sha256 "
            f"{str(stored['sha256'])[:12]} then, {now['sha256'][:12]} now); export needs the "
            "data the search used, or a new study on the new data"
        )
    if stored.get("split_counts") != now["split_counts"]:
        raise DataError(
            f"the dataset splits differ from those of study '{study.study_name}' "
            "(same files, other train/val/test counts); export needs the search's splits"
        )
    return now


def export_config(config: StudyConfig) -> StudyConfig:
    """The study file for retraining: no per-trial time limit.

    ``training.trial_timeout`` bounds a trial inside a search; the final model
    may train on more data (train+val) and must not be cut short by it.
    """
    from hpo.config import validate_config

    data = config.to_dict()
    data["training"]["trial_timeout"] = None
    data["storage"] = None
    return validate_config(data, source=f"study '{config.study.name}'")


def retrain(
    config: StudyConfig, dataset: Dataset, params: dict[str, Any], train_on: TrainOn
) -> tuple[keras.Model, TrainResult]:
    """Train the trial's recipe from scratch on ``train`` or ``train+val``."""
    from hpo.training import configure_backend, train_and_evaluate

    if train_on not in TRAIN_ON:
        raise HpoError(f"--train-on: must be one of {', '.join(TRAIN_ON)}, got '{train_on}'")
    configure_backend(config.training.backend)
    result = train_and_evaluate(
        export_config(config), dataset, params, keep_model=True, train_split=train_on
    )
    return result.model, result
