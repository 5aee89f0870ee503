"""The Channels JSON WebSocket endpoint (`/ws/devices/`) for integrations that do not speak Socket.IO.

Frames are `{"event": name, "data": payload}` both ways, with the same event names, payloads and
subscribe semantics as Socket.IO. Authentication: the session cookie or `Authorization: Bearer <token>`.

A pump's changes reach this process's connections straight from the fan-out (`device_watchers`), never through
the channel layer: every Daphne reads the change log itself, so a change sent through channels-redis would
reach the other processes' connections a second time, and Redis would sit on the road of every change. The
channel layer (channels-redis with `REDIS_URL`) carries what must span the processes: `session.closed` to the
connections of a Django session that signed out on any of them.
"""

import json
import logging
from typing import Any

from autobahn.exception import Disconnected
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from protocol import events
from protocol.events import DeviceChange
from protocol.ward_payloads import error_body
from realtime.events import change_to_wire
from realtime.fanout import fanout
from realtime.sio import server as sio_server
from realtime.sio.auth import authenticate, bearer_token, origin_allowed
from realtime.sio.rights import rights
from realtime.sio.subscriptions import Subscriber

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_ABUSE = 4429
MAX_FRAME_BYTES = 16 * 1024


# pump -> this process's endpoint connections subscribed to it (joined under the pump's lock, like a room)
device_watchers: dict[str, set["DeviceStreamConsumer"]] = {}


def session_group(session_hash: str) -> str:
    """The Channels group of every endpoint connection opened with one Django session."""
    return f"session.{session_hash}"


class DeviceStreamConsumer(AsyncJsonWebsocketConsumer):
    """One integration's connection: subscribe to pumps and ward feeds, receive their events."""

    subscriber: Subscriber | None = None

    async def connect(self) -> None:
        sio_server.Runtime.bind()
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self.scope["headers"]}
        scheme = "https" if self.scope.get("scheme") in ("https", "wss") else "http"
        if not origin_allowed(headers.get("origin"), scheme=scheme, host=headers.get("host")):
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        token = bearer_token(headers.get("authorization"))
        principal = await authenticate(headers.get("cookie"), {"token": token} if token else None)
        if principal is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.watching: set[str] = set()
        self.groups_joined: set[str] = set()
        self.subscriber = Subscriber(principal, self.channel_name, self._send_event, self._join, self._leave)
        if await rights.admit(self.channel_name, self.subscriber, close=lambda: self.close(code=CLOSE_UNAUTHORIZED)):
            self.subscriber = None
            await self.close(code=CLOSE_ABUSE)  # over the per-user socket cap
            return
        if principal.session_hash:
            await self._group_add(session_group(principal.session_hash))
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if self.subscriber is None:
            return
        try:
            if text_data is None or len(text_data) > MAX_FRAME_BYTES:
                raise ValueError("expected a JSON text frame")
            content = json.loads(text_data)
        except (ValueError, RecursionError):  # bad JSON, >4,300 digits, deep nesting: a malformed request
            content = None
        event = content.get("event") if isinstance(content, dict) else None
        data = content.get("data") if isinstance(content, dict) else None
        try:
            keep = await self.subscriber.handle(event if isinstance(event, str) else "", data)
        except Exception:  # one guarded catch-all per request: a bad request never takes the server down
            logger.exception("request failed on the Channels endpoint")
            await self._send_event(events.ERROR, error_body("Internal error"))
            keep = True
        if not keep:
            await self.close(code=CLOSE_ABUSE)

    async def disconnect(self, code: int) -> None:
        rights.release(self.channel_name)
        if self.subscriber is not None:
            self.subscriber.close()
            for device_id in list(getattr(self, "watching", ())):
                self._unwatch(device_id)
        for group in getattr(self, "groups_joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def device_change(self, change: dict, skip: frozenset[str] = frozenset()) -> None:
        """A change from the fan-out (wire form); skipped when this connection's snapshot already holds it.

        `skip` is the fan-out's own answer (`FanOut.note_snapshot`), as for a Socket.IO room: it knows which row of
        the pump a snapshot was of, so a pump deleted and registered anew (its `seq` counted afresh) is not
        skipped for the old row's `seq`.
        """
        device_id = change["deviceId"]
        if device_id not in self.subscriber.limits.devices or self.channel_name in skip:
            return
        await self._send_event(change["event"], {"deviceId": device_id, "seq": change["seq"], **change["body"]})

    async def session_closed(self, message: dict) -> None:
        """The session this connection was opened with signed out."""
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def _send_event(self, event: str, payload: dict) -> None:
        """Send one event; a client that has just left gets nothing and raises nothing (its `disconnect` follows),
        so a loop sending to many connections (ward feeds, the rights re-check) never stops at this one."""
        try:
            await self.send_json({"event": event, "data": payload})
        except Disconnected:
            logger.info("event not sent: the endpoint's client has left", extra={"event": event})

    async def _join(self, device_id: str) -> None:
        self.watching.add(device_id)
        device_watchers.setdefault(device_id, set()).add(self)

    async def _leave(self, device_id: str) -> None:
        self._unwatch(device_id)

    def _unwatch(self, device_id: str) -> None:
        self.watching.discard(device_id)
        watchers = device_watchers.get(device_id)
        if watchers is not None:
            watchers.discard(self)
            if not watchers:
                del device_watchers[device_id]

    async def _group_add(self, group: str) -> None:
        self.groups_joined.add(group)
        await self.channel_layer.group_add(group, self.channel_name)


async def deliver_to_watchers(change: DeviceChange, skip: frozenset[str]) -> None:
    """Fan-out target: this process's endpoint connections of the pump (each skips what its snapshot holds)."""
    watchers = device_watchers.get(change.device_id)
    if not watchers:
        return
    wire = change_to_wire(change)
    for consumer in list(watchers):
        try:
            await consumer.device_change(wire, skip)
        except Exception:  # one broken connection must not keep the pump's change from the others
            logger.exception("delivering to an endpoint connection failed", extra={"device_id": change.device_id})


async def close_session_connections(session_hash: str) -> None:
    """Close every endpoint connection opened with this Django session."""
    await get_channel_layer().group_send(session_group(session_hash), {"type": "session.closed"})


def install() -> None:
    """Feed the endpoint from the fan-out and close its connections at sign-out."""
    fanout.targets.append(deliver_to_watchers)
    sio_server.sign_out_closers.append(close_session_connections)
