"""The Channels JSON WebSocket endpoint (`/ws/devices/`) for integrations that do not speak Socket.IO.

Frames are `{"event": name, "data": payload}` both ways, with the same event names, payloads and
subscribe semantics as Socket.IO. Authentication: the session cookie or `Authorization: Bearer <token>`.
"""

import json
import logging
from typing import Any

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
from realtime.sio.subscriptions import Subscriber, device_group

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_ABUSE = 4429
MAX_FRAME_BYTES = 16 * 1024


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
        self.snapshot_seq: dict[str, int] = {}
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
        for group in getattr(self, "groups_joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def device_change(self, message: dict) -> None:
        """A change from the fan-out; skipped when this connection's snapshot already holds it."""
        change = message["change"]
        device_id = change["deviceId"]
        if device_id not in self.subscriber.limits.devices or change["seq"] <= self.snapshot_seq.get(device_id, 0):
            return
        await self._send_event(change["event"], {"deviceId": device_id, "seq": change["seq"], **change["body"]})

    async def session_closed(self, message: dict) -> None:
        """The session this connection was opened with signed out."""
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def _send_event(self, event: str, payload: dict) -> None:
        if event == events.STREAM_SUBSCRIBED:
            self.snapshot_seq[payload["deviceId"]] = payload["seq"]
        await self.send_json({"event": event, "data": payload})

    async def _join(self, device_id: str) -> None:
        await self._group_add(device_group(device_id))

    async def _leave(self, device_id: str) -> None:
        group = device_group(device_id)
        self.groups_joined.discard(group)
        self.snapshot_seq.pop(device_id, None)
        await self.channel_layer.group_discard(group, self.channel_name)

    async def _group_add(self, group: str) -> None:
        self.groups_joined.add(group)
        await self.channel_layer.group_add(group, self.channel_name)


async def deliver_to_groups(change: DeviceChange, skip: frozenset[str]) -> None:
    """Fan-out target: the pump's Channels group (consumers skip what their snapshot holds)."""
    await get_channel_layer().group_send(
        device_group(change.device_id), {"type": "device.change", "change": change_to_wire(change)}
    )


async def close_session_connections(session_hash: str) -> None:
    """Close every endpoint connection opened with this Django session."""
    await get_channel_layer().group_send(session_group(session_hash), {"type": "session.closed"})


def install() -> None:
    """Feed the endpoint from the fan-out and close its connections at sign-out."""
    fanout.targets.append(deliver_to_groups)
    sio_server.sign_out_closers.append(close_session_connections)
