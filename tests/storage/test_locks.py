"""``budget_lock`` really excludes a second holder, on every backend.

Threads (and, for SQLite's lock file, a second process) take turns through
events: the second holder must not get in until the first lets go.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import pytest

from hpo.storage import budget_lock

WAIT = 30.0  # an upper bound for events that must happen; never reached when all is well


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def lock_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue(f"{request.param}_url"))


def _thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_second_holder_waits_for_the_first(lock_url: str) -> None:
    first_in, let_go, trying, second_in = (threading.Event() for _ in range(4))
    order: list[str] = []

    def first() -> None:
        with budget_lock(lock_url, "study"):
            order.append("first in")
            first_in.set()
            let_go.wait(WAIT)
            order.append("first out")

    def second() -> None:
        first_in.wait(WAIT)
        trying.set()
        with budget_lock(lock_url, "study"):
            order.append("second in")
            second_in.set()

    threads = [_thread(first), _thread(second)]
    assert trying.wait(WAIT)
    assert not second_in.wait(1.0), "the second holder got in while the first held the lock"
    let_go.set()
    assert second_in.wait(WAIT)
    for t in threads:
        t.join(WAIT)
    assert order == ["first in", "first out", "second in"]


def test_other_studies_are_not_held_up(lock_url: str) -> None:
    if lock_url.startswith("sqlite"):
        pytest.skip("SQLite has one lock file per database, shared by its studies")
    first_in, let_go, other_in = (threading.Event() for _ in range(3))

    def first() -> None:
        with budget_lock(lock_url, "study-a"):
            first_in.set()
            let_go.wait(WAIT)

    def other() -> None:
        first_in.wait(WAIT)
        with budget_lock(lock_url, "study-b"):
            other_in.set()

    threads = [_thread(first), _thread(other)]
    try:
        assert other_in.wait(WAIT), "a lock on study-a held up study-b"
    finally:
        let_go.set()
        for t in threads:
            t.join(WAIT)


def _hold(
    url: str, held: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:
    with budget_lock(url, "study"):
        held.set()
        release.wait(WAIT)


def test_sqlite_lock_excludes_another_process(sqlite_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(sqlite_url, held, release), daemon=True)
    child.start()
    try:
        assert held.wait(WAIT)
        got_in = threading.Event()

        def ours() -> None:
            with budget_lock(sqlite_url, "study"):
                got_in.set()

        thread = _thread(ours)
        assert not got_in.wait(1.0), "this process got in while another held the lock"
        release.set()
        assert got_in.wait(WAIT)
        thread.join(WAIT)
    finally:
        release.set()
        child.join(WAIT)
    assert child.exitcode == 0


def test_no_lock_behind_the_proxy() -> None:
    with budget_lock("grpc://proxy:13000", "study"), budget_lock("grpc://proxy:13000", "study"):
        pass  # the worker settles the budget by trial numbers there
