"""Storage URLs: which one to use, how to print it, and which driver opens it.

The URL is resolved in one place (command line > ``$HPO_STORAGE`` > study file
> default SQLite file) and never printed with its password.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hpo.errors import StorageError

DEFAULT_STORAGE = "sqlite:///storage/hpo.db"
ENV_VAR = "HPO_STORAGE"

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:)[^@\s]*(@)")


def resolve_url(cli: str | None = None, file_value: str | None = None) -> str:
    """The storage URL to use, from the first of: flag, ``$HPO_STORAGE``, study file, default.

    The environment is read at each call, so a test or a launcher that sets
    ``HPO_STORAGE`` after import is obeyed.
    """
    for value in (cli, os.environ.get(ENV_VAR), file_value):
        if value:
            return value
    return DEFAULT_STORAGE


def redact(text: str) -> str:
    """Hide any password in a URL or in a message that quotes one."""
    return _PASSWORD_RE.sub(r"\1***\2", text)


def normalize_url(url: str) -> str:
    """Validate a URL and pick the drivers hpo installs (psycopg 3, PyMySQL).

    A SQLite file's folder is created here, so a first run needs no setup.
    """
    import sqlalchemy as sa

    if url.startswith("grpc://"):
        from hpo.storage._proxy import parse_proxy_url

        parse_proxy_url(url)  # grpc://HOST:PORT, with ?tls=1 for a secured proxy
        return url
    try:
        parsed = sa.make_url(url)
    except Exception:
        raise StorageError(
            f"storage: '{redact(url)}' is not a valid database URL; examples: "
            "sqlite:///storage/hpo.db, postgresql://user@host:5432/db, mysql://user@host/db"
        ) from None
    if parsed.drivername in _DRIVERS:  # before the check: postgres:// is not a dialect name
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise StorageError(
            f"storage: unsupported database '{backend}' in '{redact(url)}'; "
            "use sqlite, postgresql or mysql"
        )
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return str(parsed.render_as_string(hide_password=False))
