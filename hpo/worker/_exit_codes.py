"""How a worker process tells its launcher why it ended.

Kept apart from the worker loop so a launcher (or a cluster executor) can
read the codes without depending on how a worker runs trials.
"""

from __future__ import annotations

USER_ERROR_EXIT_CODE = 2  # a bad study file, a missing dataset: restarting won't help
HUNG_EXIT_CODE = 75  # a trial hung past its time limit; the trial is recorded as failed
RECYCLE_EXIT_CODE = 76  # quota of trials per process reached: restart me, not an error
