"""The SQL storage every worker and report shares: URLs, opening, retries, locks, proxy.

``_optuna`` holds the only code in hpo that touches Optuna's private API;
the rest of the package goes through the names re-exported here.
"""

from __future__ import annotations

from hpo.storage import _optuna as optuna_private
from hpo.storage._certs import WrittenCerts, make_certificates
from hpo.storage._heartbeat import BEAT_ATTR, HeartbeatSettings, heartbeat_settings
from hpo.storage._locks import budget_lock
from hpo.storage._open import open_storage
from hpo.storage._proxy import (
    ProxyAddress,
    ServerTls,
    is_loopback,
    parse_proxy_url,
    server_tls,
    start_proxy,
)
from hpo.storage._requeue import REQUEUES_ATTR, RequeueFailedTrial
from hpo.storage._retry import retrying
from hpo.storage._url import DEFAULT_STORAGE, ENV_VAR, normalize_url, redact, resolve_url

__all__ = [
    "BEAT_ATTR",
    "DEFAULT_STORAGE",
    "ENV_VAR",
    "REQUEUES_ATTR",
    "HeartbeatSettings",
    "ProxyAddress",
    "RequeueFailedTrial",
    "ServerTls",
    "WrittenCerts",
    "budget_lock",
    "heartbeat_settings",
    "is_loopback",
    "make_certificates",
    "normalize_url",
    "open_storage",
    "optuna_private",
    "parse_proxy_url",
    "redact",
    "resolve_url",
    "retrying",
    "server_tls",
    "start_proxy",
]
