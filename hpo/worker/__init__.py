"""Trial workers: admission to the shared budget, liveness, signals, the loop.

``run_worker`` is the one entry point; the exit codes are what a launcher
reads (``hpo.worker._exit_codes``, importable without the loop's concerns).
"""

from __future__ import annotations

from hpo.worker._admission import Admission, Verdict
from hpo.worker._data import check_inputs, prepare_dataset, prepare_dataset_and_fingerprint
from hpo.worker._exit_codes import HUNG_EXIT_CODE, RECYCLE_EXIT_CODE, USER_ERROR_EXIT_CODE
from hpo.worker._liveness import hang_margin
from hpo.worker._loop import MAX_CONSECUTIVE_FAILURES, RunSummary, TrialCallback, run_worker
from hpo.worker._signals import Interrupted, interrupted_line

__all__ = [
    "HUNG_EXIT_CODE",
    "MAX_CONSECUTIVE_FAILURES",
    "RECYCLE_EXIT_CODE",
    "USER_ERROR_EXIT_CODE",
    "Admission",
    "Interrupted",
    "RunSummary",
    "TrialCallback",
    "Verdict",
    "check_inputs",
    "hang_margin",
    "interrupted_line",
    "prepare_dataset",
    "prepare_dataset_and_fingerprint",
    "run_worker",
]
