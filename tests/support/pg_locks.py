"""Races with PostgreSQL's row locks: another connection's transaction committed once this one waits for a lock."""

import threading
import time
from collections.abc import Callable

from django.db import connection, connections, transaction

from devices.exceptions import PumpStreamError


def wait_for_a_lock_waiter(timeout_s: float = 10.0) -> None:
    """In the other transaction's connection: wait until some other backend waits for a lock (the code under test)."""
    deadline = time.monotonic() + timeout_s
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the code under test never waited for the lock held by the other transaction")


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
