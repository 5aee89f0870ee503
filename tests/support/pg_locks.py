"""Races with PostgreSQL's row locks: another connection's transaction committed once this one waits for a lock."""

import threading
import time
from collections.abc import Callable

from django.db import connection, connections, transaction

from devices.exceptions import PumpStreamError

# The sessions of this test database waiting for a lock, this one's aside. `pg_locks` is the cluster's: under xdist
# the other workers' test databases are in the same cluster, and a waiter of theirs once let a test here go on before
# its own session waited (a ward's deletion ran before the move it was to wait for, CI 2026-12-06). A transaction id's
# lock has no database of its own, so the waiter's session says which database it is in.
WAITERS_HERE = (
    "SELECT count(DISTINCT locks.pid) FROM pg_locks AS locks"
    " JOIN pg_stat_activity AS sessions ON sessions.pid = locks.pid"
    " WHERE NOT locks.granted AND locks.pid <> pg_backend_pid() AND sessions.datname = current_database()"
)


def lock_waiters() -> int:
    """How many other sessions of this test database wait for a lock now."""
    with connection.cursor() as cursor:
        cursor.execute(WAITERS_HERE)
        return cursor.fetchone()[0]


def waiters_at_least(count: int, timeout_s: float = 10.0) -> None:
    """Wait until `count` other sessions of this test database wait for a lock."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if lock_waiters() >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} sessions ever waited for a lock")


def wait_for_a_lock_waiter(timeout_s: float = 10.0) -> None:
    """In the other transaction's connection: wait until some other session waits for a lock (the code under test)."""
    try:
        waiters_at_least(1, timeout_s)
    except AssertionError:
        raise AssertionError("the code under test never waited for the lock held by the other transaction") from None


def in_another_transaction(edit: Callable[[], object], *, then: Callable[[], object] | None = None,
                           while_waiting: bool = True) -> threading.Thread:  # fmt: skip
    """Run `edit()` in another connection's transaction (on a thread; join it): once the caller is waiting for a lock
    it holds, `then()` runs and the transaction commits (`while_waiting`); or `edit()` is committed before this
    returns (the control, for the same outcome). Returns once `edit()` ran."""
    started = threading.Event()

    def request() -> None:
        try:
            with transaction.atomic():
                edit()
                if while_waiting:
                    started.set()
                    wait_for_a_lock_waiter()
                    if then is not None:
                        then()
        finally:
            started.set()
            connection.close()

    thread = threading.Thread(target=request)
    thread.start()
    assert started.wait(10)
    if not while_waiting:
        thread.join()
    return thread


def in_another_session(action: Callable[[], object]) -> tuple[threading.Thread, dict]:
    """`action()` on a thread of its own, so in a database connection of its own (not started: start and join it).
    The dict says how it ended: `done` True once it returned, or `refused` the PumpStreamError it raised."""
    outcome: dict = {}

    def run() -> None:
        try:
            action()
            outcome["done"] = True
        except PumpStreamError as exc:
            outcome["refused"] = exc
        finally:
            connections.close_all()

    return threading.Thread(target=run), outcome
