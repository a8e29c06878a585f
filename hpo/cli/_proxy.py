"""``hpo storage-proxy``: Optuna's gRPC storage proxy in front of the database."""

from __future__ import annotations

from typing import Annotated

import typer

from hpo.cli._app import ReadStorageOpt, app, console, storage_url
from hpo.errors import HpoError


@app.command("storage-proxy")
def storage_proxy(
    storage: ReadStorageOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 13000,
) -> None:
    """Serve Optuna's gRPC storage proxy in front of the database (grpc://HOST:PORT)."""
    if not 0 < port < 65536:
        raise HpoError(f"--port: must be between 1 and 65535, got {port}")
    import optuna

    from hpo.storage import open_storage, redact

    url = storage_url(storage)
    if url.startswith("grpc://"):
        raise HpoError("storage-proxy: --storage must be a database URL, not grpc://")
    # Optuna's cache in front of the RDB storage, as its proxy documentation advises.
    store = optuna.storages.get_storage(open_storage(url))
    console.print(f"serving {redact(url)} on grpc://{host}:{port}", markup=False)
    optuna.storages.run_grpc_proxy_server(store, host=host, port=port)
