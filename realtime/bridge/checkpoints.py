"""SQLite's WAL checkpoints on a thread of their own, so that no batch's commit waits for one.

SQLite copies its write-ahead log back into the database file (a checkpoint: page writes and an fdatasync of
each file) inside whichever commit takes the log past `wal_autocheckpoint` pages (1,000 by default). At 400
routine messages a second the bridge's small batches wrote that many pages about four times a second, so the
worker itself ran the checkpoints: 126 fdatasync calls in 15 s, up to 7.7 ms each (strace), every message of
those batches and of the batches queued behind them waiting (bench/README.md, session 7).

Here the bridge process's own connections never checkpoint (`wal_autocheckpoint=0`, set on each as it opens),
and this thread runs a PASSIVE checkpoint every `interval_s`: it never blocks a writer or a reader, and the
sqlite3 module lets go of the GIL while it writes and syncs, so the worker and paho's thread go on meanwhile.
Other processes (Daphne, `manage.py` commands) keep SQLite's default and checkpoint in their own commits when
they find the log long. If this thread ends, the worker stops the bridge (`BridgeFault`), as for its other
threads, so the log can never grow unchecked. Nothing happens on PostgreSQL.
"""

import logging
import threading

from django.db import DatabaseError, connection, connections
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 1.0


def _without_autocheckpoint(sender, connection, **kwargs) -> None:
    """A new SQLite connection of this process leaves checkpoints to the checkpointer."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=0")


class WalCheckpointer:
    """Checkpoints of an SQLite database in WAL mode, for the bridge process; `run` on a thread of its own."""

    def __init__(self, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self._stop = threading.Event()
        self.interval_s = interval_s
        self.checkpoints = 0
        self.installed = False

    def install(self) -> bool:
        """Take over this process's checkpoints (False, and nothing changed, when the database is not SQLite)."""
        if connection.vendor != "sqlite":
            return False
        connection_created.connect(_without_autocheckpoint, dispatch_uid="bridge-wal-checkpointer")
        for opened in connections.all(initialized_only=True):  # this thread's, opened before (start-up records)
            if opened.connection is not None:
                _without_autocheckpoint(None, opened)
        self.installed = True
        return True

    def uninstall(self) -> None:
        """New connections checkpoint on their own again (a bridge stopped in a process that goes on: tests)."""
        connection_created.disconnect(dispatch_uid="bridge-wal-checkpointer")
        self.installed = False

    def run(self) -> None:
        """Checkpoint every `interval_s` until stopped; a failed checkpoint is logged and tried at the next turn."""
        try:
            while not self._stop.wait(self.interval_s):
                self.checkpoint()
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()

    def checkpoint(self) -> tuple[int, int, int] | None:
        """One PASSIVE checkpoint: (busy, pages in the log, pages copied back), or None when it failed."""
        try:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                busy, logged, copied = cursor.fetchone()
        except DatabaseError as error:  # e.g. the file is locked by a schema change; the next turn tries again
            logger.warning("WAL checkpoint failed: %s", error)
            connection.close()
            return None
        self.checkpoints += 1
        return busy, logged, copied
