"""Storage URLs: resolution order, redaction, drivers."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.errors import StorageError
from hpo.storage import DEFAULT_STORAGE, normalize_url, redact, resolve_url


def test_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    assert resolve_url(None, None) == DEFAULT_STORAGE
    assert resolve_url(None, "sqlite:///f.db") == "sqlite:///f.db"
    monkeypatch.setenv("HPO_STORAGE", "sqlite:///env.db")  # after import: read at each call
    assert resolve_url(None, "sqlite:///f.db") == "sqlite:///env.db"
    assert resolve_url("sqlite:///cli.db", "sqlite:///f.db") == "sqlite:///cli.db"
    assert resolve_url("", None) == "sqlite:///env.db"  # an empty flag is no flag


def test_redact_hides_passwords() -> None:
    url = "postgresql://hpo:s3cret@db:5432/hpo"
    assert "s3cret" not in redact(url)
    assert redact(url) == "postgresql://hpo:***@db:5432/hpo"
    assert (
        redact(f"cannot reach '{url}' now") == "cannot reach 'postgresql://hpo:***@db:5432/hpo' now"
    )
    assert redact("sqlite:///storage/hpo.db") == "sqlite:///storage/hpo.db"


@pytest.mark.parametrize(
    ("given", "opened"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql+psycopg://u:pw@h:5432/db"),
        ("postgres://u:pw@h/db", "postgresql+psycopg://u:pw@h/db"),  # Heroku-style scheme
        ("mysql://u@h/db?charset=utf8mb4", "mysql+pymysql://u@h/db?charset=utf8mb4"),
        ("mariadb://u@h/db", "mysql+pymysql://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),  # a chosen driver
        ("grpc://proxy:13000", "grpc://proxy:13000"),
        ("sqlite:///:memory:", "sqlite:///%3Amemory%3A"),
    ],
)
def test_plain_urls_get_installed_drivers(given: str, opened: str) -> None:
    # The password must survive: this URL is what the engine connects with.
    assert normalize_url(given) == opened


def test_sqlite_file_folder_is_created(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b" / "x.db"
    assert not nested.parent.exists()
    assert normalize_url(f"sqlite:///{nested}") == f"sqlite:///{nested}"
    assert nested.parent.is_dir() and not nested.exists()  # the folder, not the file


@pytest.mark.parametrize("url", ["not a url", "oracle://u@h/db", "grpc://nohostport"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(StorageError, match="storage"):
        normalize_url(url)
