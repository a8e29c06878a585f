"""The dataset a worker trains on, checked before any trial starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig
    from hpo.data import Dataset


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
