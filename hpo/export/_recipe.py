"""The recipe a trial trained with, read back from the trial's own record.

A study can be resumed with another sampler or with settings that resume
allows to change, so the study's stored file says how the *latest* run was
set up, not necessarily how a given trial was. Each trial stores its own
recipe (``keys.RECIPE``: resolved dataset, model, training and objective
sections, its full parameters and the input shape); trials written before
that key existed fall back to the study's stored file and ``params_full``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo import keys
from hpo.errors import DataError, HpoError

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig
    from hpo.data import Dataset

SECTIONS = ("dataset", "model", "training", "objective")


@dataclass(frozen=True)
class Recipe:
    """What to retrain: the study file as the trial saw it and its parameters."""

    config: StudyConfig
    params: dict[str, Any]
    input_shape: tuple[int, int, int] | None  # None for trials without a stored recipe
    source: str  # "trial" (its own record) or "study" (the study's stored file)
    sampler: dict[str, Any] | None = None

    def check_input(self, dataset: Dataset) -> None:
        """The data must decode to the shape the trial trained on."""
        if self.input_shape is not None and tuple(dataset.input_shape) != self.input_shape:
            raise DataError(
                f"the dataset decodes to {list(dataset.input_shape)} but the trial trained on "
                f"{list(self.input_shape)}; export needs the trial's image size and channels"
            )

    def describe(self) -> dict[str, Any]:
        """For ``model.json``: where the recipe came from."""
        return {
            "source": self.source,
            "sampler": self.sampler,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }


def trial_recipe(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Recipe:
    """The trial's own recipe when it has one, else the study's file and ``params_full``."""
    from hpo.config import validate_config

    stored = study.user_attrs.get(keys.STUDY_CONFIG)
    if not isinstance(stored, dict):
        raise HpoError(f"study '{study.study_name}' was not created by hpo (no stored study file)")
    own = trial.user_attrs.get(keys.RECIPE)
    source = f"trial {trial.number} of study '{study.study_name}'"
    if isinstance(own, dict) and all(isinstance(own.get(s), dict) for s in SECTIONS):
        data = {**stored, **{s: own[s] for s in SECTIONS}}
        params = own.get("params")
        shape = own.get("input_shape")
        if not isinstance(params, dict):
            raise HpoError(f"{source}: its stored recipe has no parameters")
        config = validate_config(data, source=source)
        in_shape = (
            (int(shape[0]), int(shape[1]), int(shape[2]))
            if isinstance(shape, list) and len(shape) == 3
            else None
        )
        sampler = own.get("sampler") if isinstance(own.get("sampler"), dict) else None
        return Recipe(config, dict(params), in_shape, "trial", sampler)
    params = trial.user_attrs.get(keys.PARAMS_FULL)
    if not isinstance(params, dict):
        raise HpoError(
            f"trial {trial.number} of '{study.study_name}' has no '{keys.PARAMS_FULL}' "
            "(not run by an hpo worker); cannot rebuild its model"
        )
    config = validate_config(stored, source=f"study '{study.study_name}'")
    return Recipe(config, dict(params), None, "study")
