"""Waking Daphne's publisher after the bridge commits: a bare `wake` over the internal Socket.IO namespace.

The changes themselves travel in the change log (the database); this only says "read it now", so the
publisher does not wait for its safety poll. A wake carries no change and Daphne reads nothing from it.
Wakes coalesce: however many commits happened while one was being sent, one more follows. Daphne being
away never blocks the worker; its publisher's poll finds the changes when it is back.
"""

import logging
import threading

import socketio
from socketio.exceptions import SocketIOError

from realtime import events, metrics
from realtime.bridge.link import reconnect_delay

logger = logging.getLogger(__name__)


class PublisherWaker:
    """Sends one `wake` per burst of commits from its own thread; never blocks the caller."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.sent = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.client = socketio.Client(reconnection=False)

    def committed(self) -> None:
        """Changes committed: wake Daphne soon (returns at once, whatever Daphne's state)."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self.client.connected and events.INTERNAL_NAMESPACE in self.client.namespaces

    def run(self) -> None:
        """Connect (with jittered backoff), then send a wake after each burst of commits until `stop()`."""
        attempt = 0
        while not self._stop.is_set():
            if not self.connected and not self._connect():
                self._stop.wait(reconnect_delay(attempt, high=5.0))
                attempt += 1
                continue
            attempt = 0
            if self._wake.wait(0.5) and not self._stop.is_set():
                self._wake.clear()
                self._send()
        if self.client.connected:
            self.client.disconnect()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _connect(self) -> bool:
        try:
            if self.client.connected:
                self.client.disconnect()
            self.client.connect(
                self.url, namespaces=[events.INTERNAL_NAMESPACE], transports=["websocket"],
                auth={"secret": self.secret}, wait_timeout=5,
            )  # fmt: skip
        except (SocketIOError, OSError, ValueError) as exc:
            logger.debug("internal connection to %s failed: %s", self.url, exc)
            return False
        logger.info("waking the publisher at %s", self.url)
        self._wake.set()  # whatever committed while away: the publisher's poll has it, a wake is quicker
        return True

    def _send(self) -> None:
        try:
            self.client.emit(events.INTERNAL_WAKE, namespace=events.INTERNAL_NAMESPACE)
        except (SocketIOError, OSError) as exc:
            logger.warning("waking the publisher failed: %s", exc)
            return
        self.sent += 1
        metrics.PUBLISHER_WAKES.inc()
