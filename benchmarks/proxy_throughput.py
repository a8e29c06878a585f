"""Trials per second through the storage proxy: plaintext against TLS with the token.

    python benchmarks/proxy_throughput.py [--storage URL] [--clients 4]
        [--trials 400] [--seconds 30] [--rounds 5] [--calls 500]

Two ``hpo storage-proxy`` processes on loopback in front of the same
database: one plaintext (``grpc://127.0.0.1:P``), one with TLS and the token
(``grpc://127.0.0.1:Q?tls=1``, certificates from ``make_certificates``).
Each round runs ``--clients`` client processes against each proxy in turn,
on a fresh study: every client asks and tells a trivial objective (random
sampler) until the round's ``--trials`` are done or ``--seconds`` have
passed. The clock starts once every client has connected (TLS handshake
included in setup) and stops when the last one finishes. Then one client
times ``--calls`` cheap requests (a study id by name): the per-call cost of
TLS and the token without the database's contention. Prints both per round,
the median of each mode and the ratio secured/plaintext.
Target: the secured proxy within 10 % of the plaintext one (ratio >= 0.90).

The default database is a SQLite file in a temporary folder; pass a
PostgreSQL URL to measure what a cluster would use.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_proxy(
    db_url: str, args: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
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
            "--host",
            "127.0.0.1",
            *args,
        ],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server, port
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"proxy did not start (exit code {server.poll()})")
        time.sleep(0.2)


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """The proxy secrets for the duration of the block, as a worker would have them."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def client(
    url: str,
    env: dict[str, str],
    study: str,
    trials: int,
    seconds: float,
    ready: Any,
    results: Any,
) -> None:
    """One worker-like client: connect, wait for the start, ask/tell until done."""
    os.environ.update(env)
    import grpc
    import optuna

    from hpo.storage import open_storage

    last = ""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        s = optuna.load_study(
            study_name=study, storage=open_storage(url), sampler=optuna.samplers.RandomSampler()
        )
    except Exception as exc:
        ready.abort()  # the other clients and the parent stop waiting
        results.put((0, time.monotonic(), f"{type(exc).__name__}: {exc}"))
        return
    ready.wait()
    start = time.monotonic()
    done = failed = 0
    while done < trials and time.monotonic() - start < seconds and failed < 10:
        try:
            trial = s.ask()
            s.tell(trial, trial.suggest_float("x", -1, 1) ** 2)
            done += 1
        except grpc.RpcError as exc:
            # A database error the proxy passes on (e.g. a failed commit under
            # contention): counted, not fatal, as it is not what is measured.
            failed += 1
            last = f"{exc.code()}: {exc.details()}"  # type: ignore[attr-defined]
    results.put((done, time.monotonic(), f"{failed} failed calls, last {last}" if failed else ""))


def call_latency(url: str, env: dict[str, str], study: str, calls: int) -> float:
    """Milliseconds per call of one cheap request from one client: the per-call cost alone."""
    from hpo.storage import open_storage

    with environment(env):
        storage = open_storage(url)
    storage.get_study_id_from_name(study)  # connect (and the TLS handshake) first
    start = time.perf_counter()
    for _ in range(calls):
        storage.get_study_id_from_name(study)
    return (time.perf_counter() - start) / calls * 1000


def measure(url: str, env: dict[str, str], study: str, args: argparse.Namespace) -> float:
    """Trials per second of ``args.clients`` processes on a fresh study."""
    import optuna

    from hpo.storage import open_storage

    with environment(env):
        optuna.create_study(study_name=study, storage=open_storage(url))
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(args.clients + 1)
    results = ctx.Queue()
    share = -(-args.trials // args.clients)
    procs = [
        ctx.Process(target=client, args=(url, env, study, share, args.seconds, ready, results))
        for _ in range(args.clients)
    ]
    for p in procs:
        p.start()
    # A client that failed to connect breaks the barrier; its error comes next.
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait(timeout=300)
    start = time.monotonic()
    outcomes: list[tuple[int, float, str]] = [
        results.get(timeout=args.seconds + 300) for _ in procs
    ]
    for p in procs:
        p.join()
    for _, _, error in outcomes:
        if error:
            print(f"  {study}: a client had {error[:300]}", flush=True)
    total = sum(n for n, _, _ in outcomes)
    return total / (max(end for _, end, _ in outcomes) - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", help="database URL (default: SQLite in a temp folder)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--trials", type=int, default=400, help="trials per round and mode")
    parser.add_argument("--seconds", type=float, default=30.0, help="time cap per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500, help="one-client calls per round")
    args = parser.parse_args()

    from hpo.storage import make_certificates

    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.storage or f"sqlite:///{tmp}/proxy.db"
        certs = make_certificates(Path(tmp) / "certs", ["127.0.0.1"])
        secrets = {"HPO_PROXY_TOKEN_FILE": str(certs.token)}
        plain, plain_port = start_proxy(db_url, [], {})
        secured, secured_port = start_proxy(
            db_url, ["--cert", str(certs.cert), "--key", str(certs.key)], secrets
        )
        modes = {
            "plaintext": (f"grpc://127.0.0.1:{plain_port}", {}),
            "tls+token": (
                f"grpc://127.0.0.1:{secured_port}?tls=1",
                {**secrets, "HPO_PROXY_CA_FILE": str(certs.ca)},
            ),
        }
        rates: dict[str, list[float]] = {m: [] for m in modes}
        latency: dict[str, list[float]] = {m: [] for m in modes}
        print(
            f"{platform.node()} {os.cpu_count()} cpus; {args.clients} clients, "
            f"{args.trials} trials or {args.seconds:g} s per round; "
            f"database {'sqlite (temp)' if not args.storage else args.storage.split('://')[0]}",
            flush=True,
        )
        try:
            for r in range(args.rounds):
                # Alternate the order so neither mode always runs on a warmer machine.
                order = list(modes) if r % 2 == 0 else list(reversed(modes))
                for mode in order:
                    url, env = modes[mode]
                    rate = measure(url, env, f"{mode}-{r}", args)
                    ms = call_latency(url, env, f"{mode}-{r}", args.calls)
                    rates[mode].append(rate)
                    latency[mode].append(ms)
                    print(
                        f"round {r + 1} {mode:10s} {rate:7.1f} trials/s, "
                        f"one client {ms:.3f} ms/call",
                        flush=True,
                    )
        finally:
            for server in (plain, secured):
                server.terminate()
                server.wait(timeout=30)
    medians = {m: statistics.median(v) for m, v in rates.items()}
    ratio = medians["tls+token"] / medians["plaintext"]
    print(
        f"median: plaintext {medians['plaintext']:.1f} trials/s, "
        f"tls+token {medians['tls+token']:.1f} trials/s, ratio {ratio:.3f} "
        f"({'within' if ratio >= 0.9 else 'NOT within'} 10 %)"
    )
    call = {m: statistics.median(v) for m, v in latency.items()}
    print(
        f"median one-client call: plaintext {call['plaintext']:.3f} ms, tls+token "
        f"{call['tls+token']:.3f} ms (+{call['tls+token'] - call['plaintext']:.3f} ms)"
    )


if __name__ == "__main__":
    main()
