"""Error types that steer the command line and the trial loop.

``HpoError`` and its subclasses are the user's mistakes or the world's state
(bad study file, missing data, unreachable database): the CLI prints their
one-line message and exits with code 2. Inside a trial, ``TrialFailedError``
marks that trial failed without stopping the worker, while ``FatalError``
stops the whole search.
"""

from __future__ import annotations


class HpoError(Exception):
    """A problem the user can fix; its message is one line naming what is wrong."""


class ConfigError(HpoError):
    """The study file or a command-line override is invalid."""


class DataError(HpoError):
    """The dataset is missing, empty, corrupt or unusable for the study."""


class StorageError(HpoError):
    """The storage URL is malformed or the database cannot be reached."""


class FatalError(HpoError):
    """The search cannot go on (for example every trial fails the same way)."""


class TrialFailedError(Exception):
    """This trial cannot succeed (e.g. out of memory); record it and move on."""
