"""Waking Daphne's publisher after the bridge commits: a bare `wake` over the internal Socket.IO namespace.

The changes themselves travel in the change log (the database); this only says "read it now", so the
publisher does not wait for its safety poll. A wake carries no change and Daphne reads nothing from it.
One wake per commit, sent from the committing thread (the Socket.IO client only queues it for its writer
thread). Daphne being away never blocks the worker; its publisher's poll finds the changes meanwhile, and
a wake follows the reconnection.
"""

import logging
import threading

import socketio
from socketio.exceptions import SocketIOError

from realtime import events, metrics
from realtime.bridge.link import reconnect_delay

logger = logging.getLogger(__name__)


class PublisherWaker:
    """Sends a `wake` from the committing thread itself (one queue put); its own thread only keeps the connection.

    Sending from the worker's thread saves a hand-off: with a waker thread in between, each wake waited for
    the GIL's switch interval whenever the worker went straight on with the next batch. The Socket.IO
    client queues the packet for its writer thread, so `committed()` never blocks on the network.
    """

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.sent = 0
        self._stop = threading.Event()
        self.client = socketio.Client(reconnection=False)

    def committed(self) -> None:
        """Changes committed: wake Daphne now (returns at once, whatever Daphne's state)."""
        if self.connected:  # else the connection thread wakes Daphne when it is back; its poll meanwhile
            self._send()

    @property
    def connected(self) -> bool:
        return self.client.connected and events.INTERNAL_NAMESPACE in self.client.namespaces

    def run(self) -> None:
        """Keep the connection (jittered backoff) until `stop()`; wake Daphne after each (re)connection."""
        attempt = 0
        while not self._stop.is_set():
            if self.connected:
                attempt = 0
                self._stop.wait(0.5)
                continue
            if self._connect():
                attempt = 0
                self._send()  # whatever committed while away: the publisher's poll has it, a wake is quicker
                continue
            self._stop.wait(reconnect_delay(attempt, high=5.0))
            attempt += 1
        if self.client.connected:
            self.client.disconnect()

    def stop(self) -> None:
        self._stop.set()

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
        return True

    def _send(self) -> None:
        try:
            self.client.emit(events.INTERNAL_WAKE, namespace=events.INTERNAL_NAMESPACE)
        except (SocketIOError, OSError) as exc:
            logger.warning("waking the publisher failed: %s", exc)
            return
        self.sent += 1
        metrics.PUBLISHER_WAKES.inc()
