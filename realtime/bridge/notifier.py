"""Waking Daphne's publisher after the bridge commits: a bare `wake` over the internal Socket.IO namespace.

The changes themselves travel in the change log (the database); this only says "read it now", so the
publisher does not wait for its safety poll. A wake carries no change and Daphne reads nothing from it.
One wake per commit, written to the WebSocket by the committing thread itself. Daphne being away never blocks
the worker; its publisher's poll finds the changes meanwhile, and a wake follows the reconnection.
"""

import logging
import threading

import socketio
from engineio import packet as engineio_packet
from socketio import packet as socketio_packet
from socketio.exceptions import SocketIOError
from websocket import WebSocketException

from realtime import events, metrics
from realtime.bridge.link import reconnect_delay

logger = logging.getLogger(__name__)


class PublisherWaker:
    """Writes a `wake` from the committing thread itself; its own thread only keeps the connection.

    `client.emit` queued each wake for the Engine.IO client's writer thread, which woke for it and wrote one
    frame: about a fifteenth of the bridge's CPU at 400 msg/s (one commit per message or two), for a frame the
    committing thread can write itself. The frame, the same text `emit` sends, goes straight to the client's
    WebSocket (`websocket-client` made with `enable_multithread`, so its sends hold a lock: the writer
    thread's pongs and this frame never interleave); `emit` is the way when there is no such socket.
    """

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.sent = 0
        self._stop = threading.Event()
        self.client = socketio.Client(reconnection=False)
        wake = socketio_packet.Packet(socketio_packet.EVENT, namespace=events.INTERNAL_NAMESPACE,
                                      data=[events.INTERNAL_WAKE])  # fmt: skip
        self.frame_text = engineio_packet.Packet(engineio_packet.MESSAGE, data=wake.encode()).encode()

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
        eio = self.client.eio
        try:
            if eio.current_transport == "websocket" and eio.state == "connected" and eio.ws is not None:
                eio.ws.send(self.frame_text)
            else:
                self.client.emit(events.INTERNAL_WAKE, namespace=events.INTERNAL_NAMESPACE)
        except (SocketIOError, WebSocketException, OSError) as exc:
            logger.warning("waking the publisher failed: %s", exc)
            return
        self.sent += 1
        metrics.PUBLISHER_WAKES.inc()
