"""PostgreSQL's wake: every commit that appended changes NOTIFYs, every Daphne process LISTENs and wakes its publisher.

The change log's table carries a statement-level trigger (`devices/migrations/0010_change_log_notify.py`,
PostgreSQL only) that calls `pg_notify('pumpstream_changes', '')` inside the transaction that appends
changes. PostgreSQL delivers a notification only when that transaction commits, once per transaction
(duplicates within one are folded), to every session listening on the channel, whatever process committed:
the bridge, another Daphne's page request, an admin action, a management command. So each Daphne's publisher
is woken by any process's commit instead of waiting for its safety poll, and the bridge needs no road to
each Daphne. A notification carries nothing: the publisher reads the committed rows, as for any wake.

One thread per Daphne process holds one autocommit connection (not Django's: it only waits); when the
connection fails it reconnects with backoff and wakes the publisher once after (notifications sent while
away are lost; the rows are not). SQLite keeps its wakes (in-process after commit, the bridge's `wake` over
the internal namespace).
"""

import logging
import threading
from collections.abc import Callable

import psycopg
from django.db import connections

logger = logging.getLogger(__name__)

CHANNEL = "pumpstream_changes"  # the trigger's channel (the migration spells it out)
RECONNECT_MAX_S = 5.0


class ChangeNotifyListener:
    """LISTENs on `CHANNEL` on its own thread and calls `wake("notify")` for each notification."""

    def __init__(self, wake: Callable[[str], None], *, alias: str = "default") -> None:
        self.wake = wake
        self.alias = alias
        self.notifications = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ChangeNotifyListener":
        """Start the listening thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="change-notify", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                self._listen()
                delay = 0.1
            except psycopg.Error as exc:
                self.connected.clear()
                logger.warning("listening for change notifications failed; reconnecting: %s", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    def _listen(self) -> None:
        # the settings' parameters, its keepalives included: a connection the network dropped silently fails in about
        # 25 s and reconnects, instead of "listening" to nothing for the kernel's two hours (pumpstream/settings.py)
        params = connections[self.alias].get_connection_params()
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            logger.info("listening for change notifications", extra={"channel": CHANNEL})
            self.wake("notify")  # whatever committed while not listening
            while not self._stop.is_set():
                for _notification in conn.notifies(timeout=1.0):
                    self.notifications += 1
                    self.wake("notify")


def change_notify_listen(wake: Callable[[str], None]) -> ChangeNotifyListener | None:
    """On PostgreSQL, start a listener that wakes the publisher on every commit of changes; None elsewhere."""
    if connections["default"].vendor != "postgresql":
        return None
    return ChangeNotifyListener(wake).start()
