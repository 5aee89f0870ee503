"""The realtime side's one road to the database: `await db_thread(function)(*args)`, its connection kept usable.

Socket.IO handlers, the Channels endpoint's requests, ward feeds and escalations read (and a silence writes) on
asgiref's thread-sensitive `sync_to_async` thread. Outside Django's request handler that is one thread shared by
all of them, and nothing calls `close_old_connections` there: Django never replaces a connection that broke. So a
PostgreSQL restart or failover left that thread's connection closed for good: every ward feed tick failed, every
new socket was refused at its session read and escalations reached no screen, until Daphne was restarted, while
the publisher, the snapshot reader and `/readyz` (threads of their own) recovered (review 38, F1 and F3).

Each call, on that thread: before it, a connection that errored, or sat unused for `IDLE_CHECK_S` or more (the
server may have restarted meanwhile), is asked `SELECT 1` and closed if it does not answer, so the call opens a
fresh one; after it, one that errored and does not answer is closed. A healthy connection is kept between calls,
as the publisher's, the snapshot reader's and the deadline keeper's threads keep theirs: `close_old_connections`
(channels' `database_sync_to_async`) would, with `CONN_MAX_AGE` 0 (the default), open a PostgreSQL backend for
every ward feed tick and every socket's connect. A connection in use more often than that is not asked (the idle
bypass of connection pools, e.g. HikariCP's 500 ms): one broken between two such calls fails the next call only.
"""

import asyncio
import contextvars
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection, connections

logger = logging.getLogger(__name__)

IDLE_CHECK_S = 0.5

_used_at = threading.local()  # per thread: alias -> when this road's last call on that connection ended


def db_thread(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`function` as a coroutine function on the realtime side's database thread, on a connection that answers."""
    return sync_to_async(functools.partial(on_usable_connection, function))


def on_usable_connection(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run `function` on this thread's connection, replaced first if broken (also for the snapshot reader's thread:
    its first read after a restart failed, sending its subscribers "subscribe again")."""
    _replace_broken(idle_checked=True)
    try:
        return function(*args, **kwargs)
    finally:
        _replace_broken(idle_checked=False)


def _replace_broken(*, idle_checked: bool) -> None:
    """Close this thread's connections that errored (or sat idle, when `idle_checked`) and no longer answer."""
    used_at: dict[str, float] | None = getattr(_used_at, "by_alias", None)
    if used_at is None:
        used_at = _used_at.by_alias = {}
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        idle = idle_checked and now - used_at.get(conn.alias, 0.0) >= IDLE_CHECK_S
        if conn.connection is not None and not conn.in_atomic_block and (conn.errors_occurred or idle):
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                logger.info("realtime database connection lost; opening a fresh one", extra={"alias": conn.alias})
                conn.close()
        used_at[conn.alias] = now


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def db_thread_answers(timeout_s: float) -> bool:
    """Whether the realtime side's database thread reads now (`SELECT 1` through this road within `timeout_s`).

    Run in a context of its own: from a Django view (`/readyz`), whose sync code runs on its request's own thread,
    the probe must reach the thread the Socket.IO handlers use, not the request's.
    """
    probe = asyncio.get_running_loop().create_task(db_thread(_select_one)(), context=contextvars.Context())
    probe.add_done_callback(lambda done: done.cancelled() or done.exception())  # its error, if late, is read
    try:
        await asyncio.wait_for(asyncio.shield(probe), timeout_s)
    except (TimeoutError, DatabaseError):
        return False
    return True
