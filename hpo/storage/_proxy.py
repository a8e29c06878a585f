"""Optuna's gRPC storage proxy, served with TLS and a shared token.

Optuna's own proxy listens in plaintext and serves anyone who reaches it,
including ``delete_study``. Here a proxy reachable from other hosts speaks
TLS and checks a bearer token on every call; clients ask for that with
``grpc://HOST:PORT?tls=1``. Secrets come from the environment or from files,
never from the command line, which shows in ``ps`` and in job listings.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import StorageError
from hpo.storage import _optuna as optuna_private
from hpo.storage._url import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import grpc
    import optuna

TOKEN_ENV = "HPO_PROXY_TOKEN"
TOKEN_FILE_ENV = "HPO_PROXY_TOKEN_FILE"
CA_ENV = "HPO_PROXY_CA_FILE"
CERT_ENV = "HPO_PROXY_CERT_FILE"
KEY_ENV = "HPO_PROXY_KEY_FILE"
MIN_TOKEN_LENGTH = 16
# Optuna's own client option: a study with many trials is one large reply.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # what a gRPC metadata value may hold, no spaces


@dataclass(frozen=True)
class ProxyAddress:
    """A parsed ``grpc://HOST:PORT[?tls=1]``."""

    host: str
    port: int
    tls: bool

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerTls:
    """What a secured proxy serves with; the token never shows in a repr."""

    cert: bytes
    key: bytes
    token: str = field(repr=False)


def parse_proxy_url(url: str) -> ProxyAddress:
    """``grpc://HOST:PORT`` is plaintext, ``grpc://HOST:PORT?tls=1`` is TLS with the token."""
    address, _, query = url.removeprefix("grpc://").partition("?")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StorageError(
            f"storage: '{redact(url)}' must look like grpc://HOST:PORT or grpc://HOST:PORT?tls=1"
        )
    if query not in ("", "tls=1", "tls=0"):
        raise StorageError(
            f"storage: '{redact(url)}': the only URL option is tls=1 (TLS and a token) "
            f"or tls=0, got '{query}'"
        )
    return ProxyAddress(host, int(port), query == "tls=1")


def is_loopback(host: str) -> bool:
    """Only this machine can reach the address (a host name other than localhost may not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read(path: str | Path, name: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise StorageError(f"{name}: cannot read '{path}': {exc.strerror}") from None


def _pem(path: str | Path, name: str, kind: str) -> bytes:
    data = _read(path, name)
    if b"-----BEGIN " not in data or kind.encode() not in data.upper():
        raise StorageError(f"{name}: '{path}' is not a PEM {kind.lower()} file")
    return data


def read_token() -> str | None:
    """The shared token from ``$HPO_PROXY_TOKEN`` or the file ``$HPO_PROXY_TOKEN_FILE``."""
    value, path = os.environ.get(TOKEN_ENV), os.environ.get(TOKEN_FILE_ENV)
    if value and path:
        raise StorageError(f"{TOKEN_ENV} and {TOKEN_FILE_ENV} are both set: set one of them")
    if path:
        name, token = TOKEN_FILE_ENV, _read(path, TOKEN_FILE_ENV).decode(errors="replace").strip()
    elif value:
        name, token = TOKEN_ENV, value.strip()
    else:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise StorageError(
            f"{name}: the token must be at least {MIN_TOKEN_LENGTH} characters, got {len(token)}"
        )
    if not _TOKEN_CHARS.fullmatch(token):
        raise StorageError(f"{name}: the token must be printable ASCII without spaces")
    return token


def client_channel(address: ProxyAddress, url: str) -> Callable[[], grpc.Channel] | None:
    """How a client connects: None for plaintext, else a TLS channel factory with the token.

    A token or CA in the environment with a plaintext URL is refused rather
    than ignored: the user meant to reach a secured proxy.
    """
    token = read_token()
    ca_path = os.environ.get(CA_ENV)
    if not address.tls:
        for name, value in ((TOKEN_ENV, token), (CA_ENV, ca_path)):
            if value:
                if name == TOKEN_ENV and not os.environ.get(TOKEN_ENV):
                    name = TOKEN_FILE_ENV
                raise StorageError(
                    f"storage: {name} is set but '{redact(url)}' is plaintext; "
                    f"use grpc://{address.target}?tls=1 (the token is sent only over TLS)"
                )
        return None
    if token is None:
        raise StorageError(
            f"storage: '{redact(url)}' needs the proxy's token: set {TOKEN_ENV} or {TOKEN_FILE_ENV}"
        )
    # Without a CA file the system's trusted roots check the proxy's certificate.
    ca = _pem(ca_path, CA_ENV, "CERTIFICATE") if ca_path else None

    def channel() -> grpc.Channel:
        import grpc

        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        secure = grpc.secure_channel(address.target, credentials, options=_CHANNEL_OPTIONS)
        return grpc.intercept_channel(secure, _with_token(token, url))

    return channel


def _with_token(token: str, url: str) -> grpc.UnaryUnaryClientInterceptor:
    """Send the token with every call; a refused token becomes one line, not a traceback.

    gRPC's call credentials would do the sending, but they run a plugin on
    another thread for each call (0.3 ms more a call on loopback here; this
    adds about 0.1 ms). The channel this wraps is always TLS, which is what
    call credentials would have guaranteed.
    """
    import collections

    import grpc

    class Details(
        collections.namedtuple(
            "Details", "method timeout metadata credentials wait_for_ready compression"
        ),
        grpc.ClientCallDetails,  # type: ignore[misc]
    ):
        pass

    bearer = ("authorization", f"Bearer {token}")

    class WithToken(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            metadata = [*(details.metadata or ()), bearer]
            call = Details(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            )
            outcome = continuation(call, request)
            code = outcome.code()
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise StorageError(
                    f"storage: the proxy at '{redact(url)}' refused the token "
                    f"({TOKEN_ENV} or {TOKEN_FILE_ENV} differs from the proxy's)"
                )
            if code == grpc.StatusCode.UNAVAILABLE:
                _raise_if_tls_setup(str(outcome.details()), url)
            return outcome

    return WithToken()


def _raise_if_tls_setup(details: str, url: str) -> None:
    """A failed handshake is a setup mistake that no retry mends (a down proxy is not)."""
    host = parse_proxy_url(url).host
    causes = {
        "WRONG_VERSION_NUMBER": "speaks plaintext: drop ?tls=1, or serve it with --cert/--key",
        "CERTIFICATE_VERIFY_FAILED": f"has a certificate that {CA_ENV} does not trust"
        if os.environ.get(CA_ENV)
        else f"has a certificate the system does not trust: set {CA_ENV}",
        "Hostname Verification": f"has a certificate that is not for '{host}' "
        f"(make one with --make-cert DIR --cert-host {host})",
    }
    for marker, cause in causes.items():
        if marker in details:
            raise StorageError(f"storage: the proxy at '{redact(url)}' {cause}")


def server_tls(
    host: str, cert_file: Path | None, key_file: Path | None, *, insecure: bool
) -> ServerTls | None:
    """The TLS and token a proxy on ``host`` serves with, or None for plaintext.

    Plaintext only on a loopback address or with ``insecure``; a partial
    setup (a token without a certificate, a certificate without a token) is
    an error, never a silent downgrade.
    """
    cert_name = "--cert" if cert_file else CERT_ENV
    key_name = "--key" if key_file else KEY_ENV
    cert_file = cert_file or _env_path(CERT_ENV)
    key_file = key_file or _env_path(KEY_ENV)
    token = read_token()
    if insecure:
        if cert_file or key_file or token:
            raise StorageError(
                "--insecure: cannot be combined with a certificate, key or token; "
                "drop --insecure to serve with TLS and the token"
            )
        return None
    if not (cert_file or key_file or token):
        if is_loopback(host):
            return None
        raise StorageError(
            f"--host {host}: a proxy other hosts can reach needs TLS and a token "
            f"(--cert FILE --key FILE, and {TOKEN_ENV} or {TOKEN_FILE_ENV}); "
            "--insecure serves without them"
        )
    if not cert_file or not key_file:
        if cert_file or key_file:
            given, missing = (cert_name, "--key") if cert_file else (key_name, "--cert")
            raise StorageError(f"{given}: needs {missing} FILE too")
        raise StorageError(
            "storage-proxy: a token is set but no --cert/--key: the token is accepted only over TLS"
        )
    if token is None:
        raise StorageError(
            f"{cert_name}: TLS needs a token too: set {TOKEN_ENV} or {TOKEN_FILE_ENV}"
        )
    cert = _pem(cert_file, cert_name, "CERTIFICATE")
    key = _pem(key_file, key_name, "PRIVATE KEY")
    _check_pair(cert, key, cert_name, key_name, key_file)
    return ServerTls(cert, key, token)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _check_pair(cert: bytes, key: bytes, cert_name: str, key_name: str, key_file: Path) -> None:
    """A mismatched pair fails inside gRPC with no file named; name it here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        public = x509.load_pem_x509_certificate(cert).public_key()
    except ValueError:
        raise StorageError(f"{cert_name}: not a valid PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise StorageError(
            f"{key_name}: '{key_file}' is not an unencrypted PEM private key"
        ) from None
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if private.public_key().public_bytes(der, raw) != public.public_bytes(der, raw):
        raise StorageError(f"{key_name}: '{key_file}' is not the key of the certificate")


def _token_check(token: str) -> grpc.ServerInterceptor:
    """Refuse every call whose ``authorization`` metadata is not ``Bearer <token>``."""
    import grpc

    expected = f"Bearer {token}".encode()

    def deny(request: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong proxy token")

    refused = grpc.unary_unary_rpc_method_handler(deny)

    class TokenCheck(grpc.ServerInterceptor):  # type: ignore[misc]
        def intercept_service(
            self,
            continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler],
            details: grpc.HandlerCallDetails,
        ) -> grpc.RpcMethodHandler:
            for key, value in details.invocation_metadata or ():  # type: ignore[attr-defined]
                given = value.encode() if isinstance(value, str) else bytes(value)
                # Constant time: the comparison must not tell how much of a guess was right.
                if key == "authorization" and hmac.compare_digest(given, expected):
                    return continuation(details)
            return refused

    return TokenCheck()


def start_proxy(
    storage: optuna.storages.BaseStorage,
    host: str,
    port: int,
    tls: ServerTls | None,
    *,
    threads: int = 10,
) -> grpc.Server:
    """Start Optuna's proxy service on ``host:port``, with TLS and the token check if given."""
    import grpc

    interceptors: Sequence[grpc.ServerInterceptor] = [_token_check(tls.token)] if tls else []
    server = grpc.server(ThreadPoolExecutor(max_workers=threads), interceptors=interceptors)
    optuna_private.add_proxy_service(server, storage)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        if tls:
            credentials = grpc.ssl_server_credentials([(tls.key, tls.cert)])
            bound = server.add_secure_port(address, credentials)
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise StorageError(
            f"--port: cannot listen on {address} (in use, or not an address of this host)"
        )
    server.start()
    return server
