"""Command deadlines kept by Daphne while no bridge reports (review 22, finding 3).

The bridge's housekeeping ends every command at its deadline. While no bridge reports (crashed, crash-looping, hung,
being deployed) nothing did: a Stop a nurse confirmed meanwhile waited "to be sent" for as long as the bridge stayed
away, and no `command_not_carried_out` sent anyone to the pump. A command never handed to the broker can never be (the
outbox never publishes after `expiresAt`), so Daphne ends it `expired` itself, through the command service, which
raises the alarm as the bridge would (`devices/services/command_deadlines.py::commands_end_unpublished`). One the
outbox marked handed (`handed_at`, committed before paho has it) whose publication it never recorded (it stalled or
died in between) may be in the broker's hands: Daphne ends it `failed`, its outcome unknown, never "never sent" (issue
15). One recorded published is left to the bridge. With a bridge reporting, this does nothing but read its heartbeat.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connection
from django.utils import timezone

from devices.selectors import bridge_status
from devices.services.command_deadlines import commands_end_unpublished

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0


def deadlines_keep() -> int:
    """One check: with no bridge reporting, end the unpublished commands past their deadline; returns how many."""
    if bridge_status()["alive"]:
        return 0
    return commands_end_unpublished(now=timezone.now())


def _keep_on_thread() -> int:
    """`deadlines_keep` on the keeper's thread, its database connection kept between checks (as the snapshot reader's:
    with `CONN_MAX_AGE` 0, `close_old_connections` would open one every 2 s, a PostgreSQL backend each time); closed
    after an error, so the next check opens a fresh one."""
    try:
        return deadlines_keep()
    except DatabaseError:
        connection.close()
        raise


class DeadlineKeeper:
    """Runs `deadlines_keep` every `every_s` on a thread of its own (never the shared `sync_to_async` thread)."""

    def __init__(self, *, every_s: float = CHECK_EVERY_S) -> None:
        self.every_s = every_s
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deadline-keeper")

    def start(self) -> None:
        """Start on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.every_s)
            try:
                ended = await loop.run_in_executor(self._executor, _keep_on_thread)
            except DatabaseError as exc:  # locked, down: tried again at the next check
                logger.warning("command deadlines not checked: %s", exc)
                continue
            except Exception:  # guarded: the keeper must outlive one bad check
                logger.exception("checking command deadlines failed")
                continue
            if ended:
                logger.info("commands ended unpublished while no bridge reports", extra={"count": ended})


deadline_keeper = DeadlineKeeper()
