"""hpo: hyperparameter optimization for transfer-learning image classifiers.

Importing the package is cheap: TensorFlow, torch and plotly are imported
only by the modules that train, sample with a GP, or draw.
"""

from __future__ import annotations

from hpo.errors import ConfigError, DataError, FatalError, HpoError, StorageError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "FatalError",
    "HpoError",
    "StorageError",
    "__version__",
]
