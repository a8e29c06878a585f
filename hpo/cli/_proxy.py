"""``hpo storage-proxy``: Optuna's gRPC storage proxy in front of the database.

Off loopback it serves TLS and checks a shared token; the token comes from
the environment (``HPO_PROXY_TOKEN`` or ``HPO_PROXY_TOKEN_FILE``), never from
a flag, because flags show in ``ps`` and in job listings.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hpo.cli._app import ReadStorageOpt, app, console, storage_url
from hpo.errors import HpoError


@app.command("storage-proxy")
def storage_proxy(
    storage: ReadStorageOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 13000,
    cert: Annotated[
        Path | None,
        typer.Option(
            "--cert",
            help="Server certificate (PEM; default: $HPO_PROXY_CERT_FILE).",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="Its private key (PEM; default: $HPO_PROXY_KEY_FILE).",
            show_default=False,
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Serve a non-loopback --host without TLS or a token (warns)."
        ),
    ] = False,
    make_cert: Annotated[
        Path | None,
        typer.Option(
            "--make-cert",
            help="Write a new CA, a server certificate, its key and a token into this "
            "folder, then exit.",
            show_default=False,
        ),
    ] = None,
    cert_host: Annotated[
        list[str] | None,
        typer.Option(
            "--cert-host",
            help="Host name or IP the certificate is for (repeat; default: localhost, "
            "127.0.0.1 and this machine's names).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve Optuna's gRPC storage proxy in front of the database.

    Off loopback it needs TLS (--cert, --key) and a token ($HPO_PROXY_TOKEN or
    $HPO_PROXY_TOKEN_FILE); clients then use grpc://HOST:PORT?tls=1 with the
    same token and the CA in $HPO_PROXY_CA_FILE.
    """
    if make_cert is not None:
        _make_cert(make_cert, cert_host or _default_hosts(), port)
        return
    if not 0 < port < 65536:
        raise HpoError(f"--port: must be between 1 and 65535, got {port}")
    import optuna

    from hpo.storage import open_storage, redact, server_tls, start_proxy

    tls = server_tls(host, cert, key, insecure=insecure)
    url = storage_url(storage)
    if url.startswith("grpc://"):
        raise HpoError("storage-proxy: --storage must be a database URL, not grpc://")
    if insecure:
        print(
            f"warning: --insecure: {host}:{port} has no TLS and no token; anyone who reaches "
            "it can read, change and delete every study",
            file=sys.stderr,
        )
    # Optuna's cache in front of the RDB storage, as its proxy documentation advises.
    store = optuna.storages.get_storage(open_storage(url))
    server = start_proxy(store, host, port, tls)
    shown = f"grpc://{host}:{port}" + ("?tls=1 (TLS, token required)" if tls else "")
    console.print(f"serving {redact(url)} on {shown}", markup=False, soft_wrap=True)
    server.wait_for_termination()


def _default_hosts() -> list[str]:
    import socket

    return ["localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()]


def _make_cert(folder: Path, hosts: list[str], port: int) -> None:
    from hpo.storage import is_loopback, make_certificates

    made = make_certificates(folder, hosts)
    reach = next((h for h in made.hosts if not is_loopback(h)), made.hosts[0])
    console.print(
        f"wrote {escape(str(made.ca))}, {escape(str(made.cert))}, {escape(str(made.key))} "
        f"(0600) and {escape(str(made.token))} (0600) for {', '.join(made.hosts)}, "
        f"valid until {made.expires}"
    )
    console.print(
        f"proxy:   HPO_PROXY_TOKEN_FILE={made.token} hpo storage-proxy --storage URL "
        f"--host 0.0.0.0 --port {port} --cert {made.cert} --key {made.key}",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"workers: HPO_PROXY_TOKEN_FILE={made.token} HPO_PROXY_CA_FILE={made.ca} "
        f"hpo worker STUDY_FILE --storage 'grpc://{reach}:{port}?tls=1'",
        markup=False,
        soft_wrap=True,
    )
