"""The per-principal socket cap across every Daphne process (`SOCKETS_PER_PRINCIPAL`), kept in PostgreSQL.

Only on PostgreSQL, where several Daphne processes run: on SQLite (one Daphne) the cap is this process's own
count, and a socket's admission needs no write (which would wait for SQLite's one write lock behind the
bridge's batches: connects took seconds under load when it did).

Each admitted socket is a `LiveSocket` row (`devices.services.sockets`): admitting counts the principal's fresh
rows of every process, closing deletes the socket's row, and every rights re-check round touches this
process's rows, so a killed process's sockets stop counting after `STALE_ROUNDS` rounds. When the database
cannot be reached at admission, the cap falls back to this process's own count (the socket is not refused
for a fault of the database; the rights check that follows would close it if its credential were gone).
"""

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from devices.services.sockets import live_socket_close, live_socket_open, live_sockets_touch

logger = logging.getLogger(__name__)

PROCESS = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
STALE_ROUNDS = 5  # re-check rounds without a touch before a process's sockets stop counting


def _in_thread(service: Callable, **kwargs):
    close_old_connections()
    try:
        return service(**kwargs)
    finally:
        close_old_connections()


class SocketLedger:
    """This process's entries in the shared tally of open sockets."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task] = set()

    @property
    def shared(self) -> bool:
        """Whether the cap counts every process's sockets (PostgreSQL with a cap set)."""
        return bool(settings.PUMPSTREAM["SOCKETS_PER_PRINCIPAL"]) and connection.vendor == "postgresql"

    @staticmethod
    def _stale_before():
        interval = settings.PUMPSTREAM["RIGHTS_RECHECK_S"]
        return timezone.now() - timedelta(seconds=max(interval * STALE_ROUNDS, 5.0))

    async def open(self, conn_id: str, principal: str, cap: int, held_here: int) -> bool:
        """Whether `principal` may open one more socket (recorded when it may)."""
        try:
            return await sync_to_async(_in_thread, thread_sensitive=False)(
                live_socket_open, process=PROCESS, conn_id=conn_id, principal=principal, cap=cap,
                now=timezone.now(), fresh_after=self._stale_before(),
            )  # fmt: skip
        except DatabaseError as exc:
            logger.warning("socket tally unreadable; capping by this process's count: %s", exc)
            return held_here < cap

    def close(self, conn_id: str) -> None:
        """Delete the socket's row soon (from the loop; never blocks the caller)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._delete(conn_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _delete(self, conn_id: str) -> None:
        try:
            await sync_to_async(_in_thread, thread_sensitive=False)(live_socket_close, process=PROCESS,
                                                                    conn_id=conn_id)  # fmt: skip
        except DatabaseError as exc:
            logger.warning("socket tally not updated (the row goes stale): %s", exc)

    async def touch(self) -> None:
        """This process's sockets are alive (each re-check round); stale rows of dead processes go."""
        await sync_to_async(_in_thread, thread_sensitive=False)(
            live_sockets_touch, process=PROCESS, now=timezone.now(), stale_before=self._stale_before()
        )
