"""Forwarding committed changes into Daphne over the internal Socket.IO namespace: best effort, never blocking."""

import logging
import threading
from collections import deque

import socketio
from socketio.exceptions import SocketIOError

from realtime import events, metrics
from realtime.bridge.link import reconnect_delay
from realtime.events import DeviceChange

logger = logging.getLogger(__name__)

MAX_BUFFERED_CHANGES = 50_000  # about a minute of a busy ward; older changes are dropped, counted and logged
MAX_CHANGES_PER_EMIT = 2_000


class ChangeForwarder:
    """Buffers changes per commit and sends them from its own thread; clients see a `seq` gap if any drop."""

    def __init__(self, url: str, secret: str, *, max_buffered: int = MAX_BUFFERED_CHANGES) -> None:
        self.url = url
        self.secret = secret
        self.max_buffered = max_buffered
        self.buffer: deque[dict] = deque()
        self.dropped = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.client = socketio.Client(reconnection=False)

    def send(self, changes: list[DeviceChange]) -> None:
        """Queue what one commit produced; returns at once, whatever Daphne's state."""
        if not changes:
            return
        with self._lock:
            self.buffer.extend(events.change_to_wire(change) for change in changes)
            overflow = len(self.buffer) - self.max_buffered
            for _ in range(max(0, overflow)):
                self.buffer.popleft()
        if overflow > 0:
            self.dropped += overflow
            metrics.FORWARD_DROPPED.inc(overflow)
            logger.warning("forward buffer full: %d changes dropped", overflow, extra={"reason": "buffer_full"})
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self.client.connected and events.INTERNAL_NAMESPACE in self.client.namespaces

    def run(self) -> None:
        """Connect (with jittered backoff), then send the buffer in order until `stop()`."""
        attempt = 0
        while not self._stop.is_set():
            if not self.connected and not self._connect():
                self._stop.wait(reconnect_delay(attempt, high=5.0))
                attempt += 1
                continue
            attempt = 0
            self._wake.wait(0.5)
            self._wake.clear()
            self._flush()
        if self.client.connected:
            self._flush()
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
        logger.info("forwarding to %s", self.url)
        return True

    def _flush(self) -> None:
        while self.buffer and self.connected:
            with self._lock:
                chunk = [self.buffer.popleft() for _ in range(min(MAX_CHANGES_PER_EMIT, len(self.buffer)))]
            try:
                self.client.emit(events.INTERNAL_FORWARD, {"changes": chunk}, namespace=events.INTERNAL_NAMESPACE)
            except (SocketIOError, OSError) as exc:
                with self._lock:
                    self.buffer.extendleft(reversed(chunk))
                logger.warning("forwarding failed: %s", exc)
                return
            self.forwarded += len(chunk)
            metrics.FORWARDED_CHANGES.inc(len(chunk))
