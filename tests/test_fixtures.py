"""The database fixtures fail, never skip, when a configured server is unreachable."""

from __future__ import annotations

import pytest

from tests.conftest import _fresh_database


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/test", "postgres"),
        ("mysql+pymysql://root@127.0.0.1:1/test", "mysql"),
    ],
)
def test_unreachable_configured_server_fails(url: str, kind: str) -> None:
    with pytest.raises(pytest.fail.Exception, match="unreachable"):
        next(_fresh_database(url, kind))
