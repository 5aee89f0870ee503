"""A Socket.IO client run as static/js/live.js runs the browser's `LiveConnection`.

It reconnects by itself with socket.io's own backoff (the browser's defaults: 1 s doubling to 5 s, ±50 %),
subscribes every pump it follows again on each connect (the fresh snapshot replaces what it held), and
subscribes a pump again when one of its events skips a `seq`. Its handlers run one at a time in arrival
order (`InOrderClient`), so the log it keeps is the order the server sent.
"""

import logging
import threading
import time
from typing import Any

import requests

from protocol import events
from tests.support.sio import EventLog, InOrderClient, state_from_events

# The Engine.IO client's own words on why it dropped a connection ('Unexpected packet from server, aborting', a
# failed request), warnings the test's log keeps; python-engineio logs nothing below ERROR without a logger of its own.
ENGINEIO_LOGGER = logging.getLogger("tests.live_client.engineio")
ENGINEIO_LOGGER.setLevel(logging.WARNING)


class LiveSubscriber:
    """Follows `device_ids` over one Socket.IO connection (websocket transport) that survives server restarts.

    `transport="polling"` is the page's fallback where WebSocket is refused: every request carries the cookie, as a
    browser's do (python-engineio's own polling requests send no headers but the handshake's). `resubscribe_on_connect
    =False` leaves out what live.js does on a reconnect (for showing a test can fail).
    """

    def __init__(self, base_url: str, device_ids: list[str], *, cookie: str, origin: str | None = None,
                 transport: str = "websocket", resubscribe_on_connect: bool = True,
                 reconnection_delay: float = 1.0, randomization_factor: float = 0.5) -> None:  # fmt: skip
        self.base_url, self.headers, self.transport = base_url, {"Cookie": cookie}, transport
        self.resubscribe_on_connect = resubscribe_on_connect
        self.last_seq: dict[str, int | None] = dict.fromkeys(device_ids)  # None: waiting for `stream:subscribed`
        self.events = EventLog()
        self.connected_at: list[float] = []
        self.disconnected_at: list[float] = []
        self.disconnect_reasons: list[str] = []
        self.gaps = 0
        self._lock = threading.Lock()
        options: dict[str, Any] = {"websocket_extra_options": {"origin": origin} if origin else {}}
        if transport == "polling":  # never for WebSocket: given a session, engineio moves the Cookie header out of
            options["http_session"] = requests.Session()  # the headers it reuses, so a reconnect would have none
            options["http_session"].headers["Cookie"] = cookie
        self.client = InOrderClient(reconnection=True, reconnection_delay=reconnection_delay, reconnection_delay_max=5,
                                    randomization_factor=randomization_factor, engineio_logger=ENGINEIO_LOGGER,
                                    **options)  # fmt: skip
        self.client.on("connect", self._connected)
        self.client.on("disconnect", self._disconnected)
        self.client.on("*", self._received)

    def connect(self, *, timeout: float = 5.0) -> "LiveSubscriber":
        self.client.connect(self.base_url, headers=self.headers, transports=[self.transport], wait_timeout=timeout)
        return self

    def _connected(self) -> None:
        first = not self.connected_at
        self.connected_at.append(time.monotonic())
        if first or self.resubscribe_on_connect:
            for device_id in self.last_seq:
                self._subscribe(device_id)

    def _disconnected(self, reason: Any = None) -> None:
        self.disconnected_at.append(time.monotonic())
        self.disconnect_reasons.append(str(reason))

    def _subscribe(self, device_id: str) -> None:
        with self._lock:
            self.last_seq[device_id] = None
        self.client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": device_id})

    def _received(self, event: str, data: Any) -> None:
        self.events.append(event, data)
        device_id = data.get("deviceId") if isinstance(data, dict) else None
        if device_id not in self.last_seq:
            return
        with self._lock:
            last = self.last_seq[device_id]
            if event == events.STREAM_SUBSCRIBED:
                self.last_seq[device_id] = data["seq"]
                return
            if not event.startswith("device:") or last is None:
                return  # between a resubscribe and its snapshot: the snapshot covers it
            if data["seq"] <= last + 1:
                self.last_seq[device_id] = max(last, data["seq"])
                return
            self.gaps += 1
        self._subscribe(device_id)  # a skipped seq: an event was missed, start over from a fresh snapshot

    def since_last_snapshot(self, device_id: str) -> tuple[int | None, list[tuple[str, dict]]]:
        """The seq of the pump's latest `stream:subscribed` and its events from there on (snapshot, then live)."""
        items = list(self.events.items)
        starts = [n for n, (name, data) in enumerate(items)
                  if name == events.STREAM_SUBSCRIBED and data.get("deviceId") == device_id]  # fmt: skip
        if not starts:
            return None, []
        tail = items[starts[-1] + 1 :]
        return items[starts[-1]][1]["seq"], [
            (name, data) for name, data in tail if name.startswith("device:") and data.get("deviceId") == device_id
        ]

    def latest_seq(self, device_id: str) -> int:
        """The newest seq this client holds for the pump (0 before its first snapshot)."""
        snapshot_seq, received = self.since_last_snapshot(device_id)
        return max([snapshot_seq or 0, *(data["seq"] for _, data in received)])

    def state(self, device_id: str) -> dict:
        """The pump's state as this client holds it: its latest snapshot plus the events since, applied in order."""
        return state_from_events(self.since_last_snapshot(device_id)[1]).as_dict()

    def close(self) -> None:
        """Disconnect, and stop reconnecting if it was trying to."""
        self.client.shutdown()


def close_all(clients: list[LiveSubscriber]) -> None:
    """Close the clients at once: a polling client's close waits for its pending long-poll GET, which the server
    leaves unanswered after the client's CLOSE (python-engineio) until the client gives it up 30 s later; one after
    the other, 5 polling clients took 95 s of a 148 s test."""
    threads = [threading.Thread(target=client.close, daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
