"""The storage proxy lets in only clients with the CA and the token.

A real ``hpo storage-proxy`` subprocess on 127.0.0.1 in front of a real
database; what refused clients tried is checked in the database itself.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import optuna
import pytest
import sqlalchemy as sa
from cryptography import x509

from hpo.errors import StorageError
from hpo.storage import (
    ServerTls,
    WrittenCerts,
    make_certificates,
    normalize_url,
    open_storage,
    optuna_private,
    parse_proxy_url,
    server_tls,
)
from hpo.storage import start_proxy as start_server
from tests.helpers import write

SECRETS = (
    "HPO_PROXY_TOKEN",
    "HPO_PROXY_TOKEN_FILE",
    "HPO_PROXY_CA_FILE",
    "HPO_PROXY_CERT_FILE",
    "HPO_PROXY_KEY_FILE",
)


@pytest.fixture(autouse=True)
def _no_proxy_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets exactly the secrets it means to (a developer's shell may have some)."""
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HPO_STORAGE", raising=False)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> WrittenCerts:
    return make_certificates(tmp_path_factory.mktemp("certs"), ["localhost", "127.0.0.1"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_proxy(
    db_url: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """``hpo storage-proxy`` in a subprocess, once its port accepts connections."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpo",
            "storage-proxy",
            "--storage",
            db_url,
            "--port",
            str(port),
            *args,
        ],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server, port
        if server.poll() is not None:
            pytest.fail(f"proxy exited: {server.communicate()[1]}")
        assert time.monotonic() < deadline, "proxy did not start"
        time.sleep(0.2)


def stop(server: subprocess.Popen[str]) -> tuple[str, str]:
    server.send_signal(signal.SIGINT)
    try:
        return server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.communicate()


@pytest.fixture
def secured(storage_url: str, certs: WrittenCerts) -> Iterator[tuple[str, str]]:
    """A TLS+token proxy in front of a fresh database: (grpc URL, database URL)."""
    server, port = start_proxy(
        storage_url,
        "--host", "127.0.0.1", "--cert", str(certs.cert), "--key", str(certs.key),
        env={"HPO_PROXY_TOKEN_FILE": str(certs.token)},
    )  # fmt: skip
    try:
        yield f"grpc://127.0.0.1:{port}?tls=1", storage_url
    finally:
        out, err = stop(server)
    assert "?tls=1 (TLS, token required)" in out
    assert certs.token.read_text().strip() not in out + err


def counts(db_url: str) -> dict[str, Any]:
    """What is in the database, read with SQLAlchemy, not through the proxy."""
    engine = sa.create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            found: dict[str, Any] = {
                table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("studies", "trials", "trial_params", "trial_values")
            }
            found["names"] = sorted(
                conn.execute(sa.text("SELECT study_name FROM studies")).scalars()
            )
            found["states"] = sorted(
                str(s) for s in conn.execute(sa.text("SELECT state FROM trials")).scalars()
            )
    finally:
        engine.dispose()
    return found


def with_token(monkeypatch: pytest.MonkeyPatch, certs: WrittenCerts) -> None:
    monkeypatch.setenv("HPO_PROXY_TOKEN_FILE", str(certs.token))
    monkeypatch.setenv("HPO_PROXY_CA_FILE", str(certs.ca))


def test_the_right_token_and_ca_get_in(
    secured: tuple[str, str], certs: WrittenCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, db_url = secured
    with_token(monkeypatch, certs)
    study = optuna.create_study(study_name="in", storage=open_storage(url), direction="maximize")
    trial = study.ask()
    study.tell(trial, trial.suggest_float("x", 0, 1))
    found = counts(db_url)
    assert (found["studies"], found["trials"], found["names"]) == (1, 1, ["in"])
    assert found["states"] == ["COMPLETE"]


def _raw_client(url: str, channel: Callable[[], grpc.Channel]) -> optuna.storages.BaseStorage:
    address = parse_proxy_url(url)
    return optuna_private.proxy_client(address.host, address.port, channel)


def _token_channel(url: str, ca: bytes, token: str | None) -> Callable[[], grpc.Channel]:
    """A TLS channel trusting ``ca`` that sends ``token`` (None: no call credentials)."""
    target = parse_proxy_url(url).target

    def channel() -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        if token is not None:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(token)
            )
        return grpc.secure_channel(target, credentials)

    return channel


def test_clients_without_the_token_or_tls_change_nothing(
    secured: tuple[str, str],
    certs: WrittenCerts,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, db_url = secured
    with_token(monkeypatch, certs)
    kept = optuna.create_study(study_name="kept", storage=open_storage(url))
    kept.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    before = counts(db_url)
    token = certs.token.read_text().strip()
    ca = certs.ca.read_bytes()
    other_ca = make_certificates(tmp_path / "other", ["127.0.0.1"]).ca.read_bytes()
    plain = url.removesuffix("?tls=1")
    clients: dict[str, Callable[[], optuna.storages.BaseStorage]] = {
        "no token": lambda: _raw_client(url, _token_channel(url, ca, None)),
        "wrong token": lambda: _raw_client(url, _token_channel(url, ca, "w" * len(token))),
        "token prefix": lambda: _raw_client(url, _token_channel(url, ca, token[:-1])),
        "token and more": lambda: _raw_client(url, _token_channel(url, ca, token + "x")),
        "another CA": lambda: _raw_client(url, _token_channel(url, other_ca, token)),
        "plaintext": lambda: _raw_client(plain, lambda: grpc.insecure_channel(plain[7:])),
    }
    kept_id = optuna_private.storage_of(kept).get_study_id_from_name("kept")
    for name, client in clients.items():
        storage = client()
        attempts: list[tuple[str, tuple[Any, ...]]] = [
            ("get_all_studies", ()),
            ("create_new_study", ([optuna.study.StudyDirection.MINIMIZE], "intruder")),
            ("delete_study", (kept_id,)),
            ("create_new_trial", (kept_id,)),
        ]
        for method, args in attempts:
            with pytest.raises(grpc.RpcError) as info:
                getattr(storage, method)(*args)
            expected = grpc.StatusCode.UNAUTHENTICATED
            if name in ("another CA", "plaintext"):
                expected = grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
            assert info.value.code() == expected, (name, method)  # type: ignore[attr-defined]
    assert counts(db_url) == before


def test_hpo_names_a_refused_token_in_one_line(
    secured: tuple[str, str], certs: WrittenCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, db_url = secured
    monkeypatch.setenv("HPO_PROXY_TOKEN", "not-the-proxy-token-at-all")
    monkeypatch.setenv("HPO_PROXY_CA_FILE", str(certs.ca))
    with pytest.raises(StorageError, match="refused the token"):
        optuna.delete_study(study_name="anything", storage=open_storage(url))
    with pytest.raises(StorageError, match="refused the token"):
        optuna.create_study(study_name="intruder", storage=open_storage(url))
    assert counts(db_url)["studies"] == 0


def test_hpo_names_a_certificate_it_cannot_trust(
    sqlite_url: str, certs: WrittenCerts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another CA's certificate, or one made for another host: one line, no retrying."""
    elsewhere = make_certificates(tmp_path / "elsewhere", ["proxy.example.org"])
    token = certs.token.read_text().strip()
    port = free_port()
    tls = ServerTls(elsewhere.cert.read_bytes(), elsewhere.key.read_bytes(), token)
    server = start_server(open_storage(sqlite_url), "127.0.0.1", port, tls)
    url = f"grpc://127.0.0.1:{port}?tls=1"
    try:
        monkeypatch.setenv("HPO_PROXY_TOKEN", token)
        monkeypatch.setenv("HPO_PROXY_CA_FILE", str(certs.ca))
        with pytest.raises(StorageError, match="a certificate that HPO_PROXY_CA_FILE does not"):
            open_storage(url).get_all_studies()
        monkeypatch.setenv("HPO_PROXY_CA_FILE", str(elsewhere.ca))
        with pytest.raises(StorageError, match=r"not for '127\.0\.0\.1' .*--cert-host"):
            open_storage(url).get_all_studies()
    finally:
        server.stop(None)


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def test_another_host_without_credentials_is_refused(sqlite_url: str) -> None:
    from tests.helpers import hpo

    done = hpo(
        "storage-proxy",
        "--storage",
        sqlite_url,
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        timeout=60,
    )
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert "--host 0.0.0.0" in line and "--insecure" in line


def test_insecure_warns_and_serves(sqlite_url: str) -> None:
    server, port = start_proxy(sqlite_url, "--host", "0.0.0.0", "--insecure")
    try:
        storage = open_storage(f"grpc://127.0.0.1:{port}")
        optuna.create_study(study_name="open", storage=storage)
    finally:
        _, err = stop(server)
    warning = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "no TLS and no token" in warning[0], err
    assert counts(sqlite_url)["names"] == ["open"]


def test_loopback_without_credentials_serves_as_before(
    sqlite_url: str, certs: WrittenCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, port = start_proxy(sqlite_url, "--host", "127.0.0.1")
    try:
        optuna.create_study(study_name="local", storage=open_storage(f"grpc://127.0.0.1:{port}"))
        with_token(monkeypatch, certs)
        with pytest.raises(StorageError, match="speaks plaintext: drop \\?tls=1"):
            open_storage(f"grpc://127.0.0.1:{port}?tls=1").get_all_studies()
    finally:
        _, err = stop(server)
    assert "warning" not in err
    assert counts(sqlite_url)["names"] == ["local"]


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({"HPO_PROXY_TOKEN": "t" * 20}, [], "no --cert/--key"),
        ({"HPO_PROXY_TOKEN": "short"}, ["cert", "key"], "at least 16 characters, got 5"),
        ({}, ["cert", "key"], "TLS needs a token too"),
        ({"HPO_PROXY_TOKEN": "t" * 20}, ["cert"], "--cert: needs --key FILE too"),
        ({"HPO_PROXY_TOKEN": "t" * 20}, ["cert", "other-key"], "is not the key of the cert"),
        ({"HPO_PROXY_TOKEN": "t" * 20}, ["cert", "ca-as-key"], "not a PEM private key"),
        ({"HPO_PROXY_TOKEN": "t" * 20, "HPO_PROXY_TOKEN_FILE": "x"}, [], "both set"),
        ({"HPO_PROXY_TOKEN": "t" * 20}, ["cert", "key", "insecure"], "--insecure: cannot"),
        ({"HPO_PROXY_TOKEN_FILE": "/nonexistent/token"}, [], "cannot read '/nonexistent"),
    ],
)
def test_a_partial_server_setup_is_one_error(
    env: dict[str, str],
    flags: list[str],
    message: str,
    certs: WrittenCerts,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    other = make_certificates(tmp_path / "other", ["localhost"])
    keys = {"key": certs.key, "other-key": other.key, "ca-as-key": certs.ca}
    key = next((keys[f] for f in flags if f in keys), None)
    with pytest.raises(StorageError, match=message):
        server_tls(
            "127.0.0.1",
            certs.cert if "cert" in flags else None,
            key,
            insecure="insecure" in flags,
        )


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("grpc://h:1", {"HPO_PROXY_TOKEN": "t" * 20}, "HPO_PROXY_TOKEN is set but .* plaintext"),
        ("grpc://h:1", {"HPO_PROXY_TOKEN_FILE": "TOKEN"}, "HPO_PROXY_TOKEN_FILE is set but"),
        ("grpc://h:1?tls=0", {"HPO_PROXY_CA_FILE": "x"}, "HPO_PROXY_CA_FILE is set but"),
        ("grpc://h:1?tls=1", {}, "needs the proxy's token"),
        (
            "grpc://h:1?tls=1",
            {"HPO_PROXY_TOKEN": "t" * 20, "HPO_PROXY_CA_FILE": "TOKEN"},
            "HPO_PROXY_CA_FILE: .* is not a PEM certificate",
        ),
        ("grpc://h:1?tls=yes", {}, "the only URL option is tls=1"),
        ("grpc://h:99999", {}, "must look like grpc://HOST:PORT"),
    ],
)
def test_a_client_mismatch_is_one_error(
    url: str,
    env: dict[str, str],
    message: str,
    certs: WrittenCerts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, str(certs.token) if value == "TOKEN" else value)
    with pytest.raises(StorageError, match=message):
        open_storage(url)


def test_make_certificates(tmp_path: Path) -> None:
    made = make_certificates(tmp_path / "c", ["proxy.example.org", "10.0.0.7"])
    for secret in (made.key, made.token):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert len(made.token.read_text().strip()) >= 32
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["proxy.example.org"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    token = made.token.read_bytes()
    with pytest.raises(StorageError, match="exists; choose an empty folder"):
        make_certificates(tmp_path / "c", ["localhost"])
    assert made.token.read_bytes() == token  # nothing overwritten
    with pytest.raises(StorageError, match="'bad host' is not a host name"):
        make_certificates(tmp_path / "d", ["bad host"])


def test_make_cert_command(tmp_path: Path) -> None:
    from tests.helpers import hpo

    done = hpo(
        "storage-proxy", "--make-cert", str(tmp_path / "c"), "--cert-host", "localhost", timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "?tls=1" in done.stdout and "HPO_PROXY_TOKEN_FILE=" in done.stdout
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "ca.pem",
        "server.key",
        "server.pem",
        "token",
    ]


def test_workers_through_the_secured_proxy_run_to_the_total(
    postgres_url: str, certs: WrittenCerts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ``hpo worker`` processes on half-second benchmark trials share a budget of 6."""
    from tests.test_launcher import start_worker

    server, port = start_proxy(
        postgres_url,
        "--host", "127.0.0.1", "--cert", str(certs.cert), "--key", str(certs.key),
        env={"HPO_PROXY_TOKEN_FILE": str(certs.token)},
    )  # fmt: skip
    try:
        with_token(monkeypatch, certs)
        study = {
            "study": {"name": "bench"},
            "objective": {"benchmark": "branin", "seconds": 0.5},
            "sampler": {"name": "random", "seed": 0},
        }
        study_file = write(tmp_path, study)
        url = f"grpc://127.0.0.1:{port}?tls=1"
        workers = [start_worker(study_file, url, 6, f"w{i}") for i in range(2)]
        for worker in workers:
            _, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, err
    finally:
        stop(server)
    found = counts(postgres_url)
    assert found["names"] == ["bench"]
    assert sum(s in ("COMPLETE", "PRUNED") for s in found["states"]) == 6
    assert "RUNNING" not in found["states"]
