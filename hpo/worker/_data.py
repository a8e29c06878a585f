"""The dataset a worker trains on, checked before any trial starts.

A benchmark study (``objective.benchmark``) has none: nothing is decoded for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig
    from hpo.data import Dataset


def check_inputs(config: StudyConfig) -> None:
    """What a study needs before it is created: data that decodes and feeds its batches.

    A benchmark study evaluates a function and needs no data.
    """
    if config.objective.benchmark is None:
        warn_small_validation(prepare_dataset(config))


MIN_VAL_PER_CLASS = 10
"""Below this many validation images of a class, one image moves macro F1 a lot."""


def warn_small_validation(dataset: Dataset) -> None:
    """One stderr line when a class has too few validation images to score it.

    With 2 validation images of a class, one prediction moves its F1 by 0.5 and
    macro F1 by 0.5 / n_classes: the search would chase noise.
    """
    counts = dataset.val.counts(dataset.n_classes)
    if min(counts, default=MIN_VAL_PER_CLASS) >= MIN_VAL_PER_CLASS:
        return
    import sys

    per_class = ", ".join(f"{n} {c}" for c, n in zip(dataset.class_names, counts, strict=True))
    print(
        f"warning: the validation split holds {per_class}; a class with fewer than "
        f"{MIN_VAL_PER_CLASS} images makes macro F1 noisy (one image moves it a lot): raise "
        "dataset.val_fraction (k-fold cross-validation is not available yet)",
        file=sys.stderr,
        flush=True,
    )


def _check_constraints(config: StudyConfig, dataset: Dataset) -> None:
    """Recall floors name classes, which only the loaded data knows."""
    from hpo.errors import ConfigError

    for name in config.objective.constraints.min_recall:
        if name not in dataset.class_names:
            raise ConfigError(
                f"objective.constraints.min_recall: unknown class '{name}'; "
                f"classes: {', '.join(dataset.class_names)}"
            )


def prepare_dataset(config: StudyConfig) -> Dataset:
    """Decode the dataset and check it can feed the search space's batches.

    Touches no study: the CLI calls it before the study is created, so bad
    data changes nothing stored.
    """
    from hpo.data import load_dataset

    dataset = load_dataset(config.dataset)
    smallest_batch = _smallest_batch(config)
    if smallest_batch > len(dataset.train):
        from hpo.errors import DataError

        raise DataError(
            f"dataset: {len(dataset.train)} training images are fewer than the smallest "
            f"batch_size {smallest_batch}; add images or lower batch_size"
        )
    _check_constraints(config, dataset)
    return dataset


def prepare_dataset_and_fingerprint(study: optuna.Study, config: StudyConfig) -> Dataset:
    """``prepare_dataset``, then record (or check) the data's fingerprint on the study.

    A worker calls it once per process: every worker of a study must train on
    the same images, whichever host it runs on.
    """
    from hpo.studies import record_fingerprint

    dataset = prepare_dataset(config)
    record_fingerprint(study, dataset.fingerprint())
    return dataset


def _smallest_batch(config: StudyConfig) -> int:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from hpo.space import SearchSpace

    space = SearchSpace.from_config(config)
    dist = space.distributions.get("batch_size")
    if isinstance(dist, CategoricalDistribution):
        return min(int(str(c)) for c in dist.choices)
    if isinstance(dist, IntDistribution):
        return int(dist.low)
    return int(space.fixed["batch_size"])
