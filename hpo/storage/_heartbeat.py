"""How often workers beat and how long a silent one is trusted.

Read from the environment when a storage or a worker needs them, never at
import, so a test or a launcher can set ``HPO_HEARTBEAT_INTERVAL`` and
``HPO_GRACE_PERIOD`` for the processes it starts and for itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Behind the gRPC proxy there is no heartbeat table: a worker beats by changing
# this trial system attr, and others watch it change (no clocks compared).
BEAT_ATTR = "hpo:beat"


@dataclass(frozen=True)
class HeartbeatSettings:
    interval: int = 30  # seconds between two beats of a RUNNING trial
    grace_period: int = 90  # seconds without a beat before the trial counts as lost


def heartbeat_settings() -> HeartbeatSettings:
    """The settings now, from ``HPO_HEARTBEAT_INTERVAL`` and ``HPO_GRACE_PERIOD``."""
    default = HeartbeatSettings()
    return HeartbeatSettings(
        interval=int(os.environ.get("HPO_HEARTBEAT_INTERVAL", default.interval)),
        grace_period=int(os.environ.get("HPO_GRACE_PERIOD", default.grace_period)),
    )
