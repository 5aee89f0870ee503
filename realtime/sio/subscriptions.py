"""Subscribe and unsubscribe requests, the same for Socket.IO and the Channels endpoint.

A `Subscriber` is one connection's subscriptions; the transport gives it `send` and join/leave
callables. Every request is validated, rate limited and checked against what the principal may see;
a refused request gets an `error` reply and never an exception out of the handler.
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError

from protocol import events
from protocol.events import DeviceChange
from protocol.ward_payloads import error_body
from realtime.cluster import SILENCE, nudge_now
from realtime.sio.access import INVALID_DEVICE, device_access, visible_device_ids, ward_scope
from realtime.sio.auth import Principal
from realtime.sio.database import db_thread
from realtime.sio.limits import ConnectionLimits, RequestRefused
from realtime.sio.request_fields import DEVICE_ID, WARD_OR_ALL, parse_device_ids, parse_field, refused_targets
from realtime.sio.silence import silence_request
from realtime.sio.snapshot import subscribe_with_snapshot
from realtime.sio.ward_feed import WardScope, ward_feed

logger = logging.getLogger(__name__)

SNAPSHOT_FAILED = "The pump's state could not be read; subscribe again"
WARD_READ_FAILED = "The ward's pumps could not be read; subscribe again"
PUMP_REMOVED = "Pump removed: it is no longer monitored"

Send = Callable[[str, dict], Awaitable[None]]
RoomAction = Callable[[str], Awaitable[None]]


def device_room(device_id: str) -> str:
    """The Socket.IO room of one pump's events."""
    return f"device:{device_id}"


@dataclass
class Subscriber:
    """One connection's subscriptions; the transport supplies how to send and how to join or leave."""

    principal: Principal
    subscriber_id: str
    send: Send
    join_device: RoomAction
    leave_device: RoomAction
    send_change: Callable[[DeviceChange], Awaitable[None]] | None = None  # a pump's event (else through `send`)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    ward_scopes: dict[str, WardScope] = field(default_factory=dict)
    _visible: frozenset[str] = field(default=frozenset(), repr=False)
    _visible_until: float = field(default=0.0, repr=False)
    _visible_read: asyncio.Task | None = field(default=None, repr=False)  # the read under way, shared by all
    closed: bool = field(default=False, repr=False)  # the transport closed it: no feed may start for it again
    # pumps whose snapshot it was sent (in their room), each with the registration (row id) the snapshot was of
    joined: dict[str, int | None] = field(default_factory=dict, repr=False)
    # pumps removed while their snapshot was read (`rights.pump_removed`), with the removed registration: the
    # snapshot decides (`_join`): of that registration, the pump is gone; of a newer one, it is watched
    removed_unjoined: dict[str, int | None] = field(default_factory=dict, repr=False)
    # the subscribe requests still reading, per pump (`device`) or ward (`ward`): an unsubscribe withdraws those
    # asked before it, which would otherwise subscribe after it once their reads return (review 48)
    _asked: dict[tuple[str, str], set[object]] = field(default_factory=dict, repr=False)

    async def handle(self, event: str, data: Any) -> bool:
        """Run one request; False when the connection must be closed for abuse."""
        try:
            self.limits.check_request()
            await self._dispatch(event, data)
        except RequestRefused as refused:
            return await self._refuse(refused, event, refused_targets(event, data))
        return True

    async def reject_undecodable(self, reason: str) -> bool:
        """A frame that could not even be decoded: a strike; False when the connection must be closed."""
        if self.limits.strikes == 0:
            logger.warning("undecodable request", extra={"principal": self.principal.label, "reason": reason})
        try:
            self.limits.strike("Undecodable request")
        except RequestRefused as refused:
            return await self._refuse(refused, "")
        return True

    async def _refuse(self, refused: RequestRefused, event: str, targets: Sequence[dict[str, str]] = ()) -> bool:
        """One `error` per pump or ward the request named (the page then knows that stream is not coming), else one."""
        # the name as a string, cut: python-socketio hands over whatever JSON the client put there (`42[123]`)
        request = str(event)[:40]
        code = {"code": refused.code} if refused.code else {}
        for target in targets or [{}]:
            await self.send(events.ERROR, error_body(refused.message, request=request, **code, **target))
        if refused.fatal:
            logger.warning("closing an abusive connection", extra={"principal": self.principal.label})
        return not refused.fatal

    async def _dispatch(self, event: str, data: Any) -> None:
        if event == events.SUBSCRIBE_DEVICE:
            await self.subscribe_device(parse_field(data, "deviceId", DEVICE_ID, self.limits))
        elif event == events.SUBSCRIBE_DEVICES:
            device_ids = parse_device_ids(data, self.limits)
            self.limits.check_request(cost=len(device_ids) - 1)  # as many tokens as one request per pump
            await self.subscribe_devices(device_ids)
        elif event == events.UNSUBSCRIBE_DEVICE:
            await self.unsubscribe_device(parse_field(data, "deviceId", DEVICE_ID, self.limits))
        elif event == events.SUBSCRIBE_WARD:
            await self.subscribe_ward(parse_field(data, "ward", WARD_OR_ALL, self.limits))
        elif event == events.UNSUBSCRIBE_WARD:
            self.unsubscribe_ward(parse_field(data, "ward", WARD_OR_ALL, self.limits))
        elif event == events.SILENCE_WARD:
            body = await db_thread(silence_request)(self.principal, data, self.limits)
            await ward_feed.announce_silence(body)
            if settings.REDIS_URL:  # the other Daphne processes' feeds announce it now too, not at their next tick
                await sync_to_async(nudge_now, thread_sensitive=False)(SILENCE, [body["ward"]])
        else:
            self.limits.strike(f"Unknown request {str(event)[:40]!r}")

    async def subscribe_device(self, device_id: str) -> None:
        """Check access and capacity, then snapshot and join under the pump's lock."""
        self.limits.check_device_capacity(device_id)  # before any read
        with self._asking("device", [device_id]) as asked:
            try:
                if not await self._admit(device_id, await self._visible_devices(), asked[device_id]):
                    return
            except DatabaseError as error:
                await self._not_read([device_id], events.SUBSCRIBE_DEVICE, error)
                return
        await self._snapshot_and_join(device_id, events.SUBSCRIBE_DEVICE)

    async def subscribe_devices(self, device_ids: list[str]) -> None:
        """`subscribe:devices`: each pump as if subscribed alone (its own `error` when refused), read together.

        Capacity and access are decided for all of them first, in order; the snapshots are then requested at
        once, so the batched reader (`snapshot_reads.py`) reads them in one go rather than one pump at a time.
        """
        with self._asking("device", device_ids) as asked:
            try:
                visible = await self._visible_devices()
            except DatabaseError as error:
                await self._not_read(device_ids, events.SUBSCRIBE_DEVICES, error)
                return
            admitted: list[str] = []
            for device_id in device_ids:
                try:
                    if not await self._admit(device_id, visible, asked[device_id]):
                        continue
                except RequestRefused as refused:
                    await self.send(events.ERROR, error_body(refused.message, request=events.SUBSCRIBE_DEVICES,
                                                             deviceId=device_id))  # fmt: skip
                    continue
                except DatabaseError as error:
                    await self._not_read([device_id], events.SUBSCRIBE_DEVICES, error)
                    continue
                admitted.append(device_id)
        await asyncio.gather(*(self._snapshot_and_join(device_id, events.SUBSCRIBE_DEVICES) for device_id in admitted))

    async def _admit(self, device_id: str, visible: frozenset[str], asked: object) -> bool:
        """Count the pump as subscribed if the principal may watch it and the cap has room, else refuse; False
        (nothing counted, nothing said) when an `unsubscribe:device` of it was handled since the request came.

        The connection's other requests run meanwhile (a task each): the cap is checked again after the last
        read, with no await between that check and the count, or requests sent at once all found it free.
        """
        self.limits.check_device_capacity(device_id)
        if device_id not in visible:  # the exact answer, and why not
            refusal = await db_thread(device_access)(self.principal, device_id)
            if refusal is not None:
                raise RequestRefused(refusal)
            self.limits.check_device_capacity(device_id)
        if not self._still_asked("device", device_id, asked):
            return False
        self.limits.devices.add(device_id)
        return True

    @contextlib.contextmanager
    def _asking(self, kind: str, names: Sequence[str]) -> Iterator[dict[str, object]]:
        """Mark a subscribe request's pumps or ward as asked for while its reads run (its token per name)."""
        asked = {name: object() for name in names}
        for name, token in asked.items():
            self._asked.setdefault((kind, name), set()).add(token)
        try:
            yield asked
        finally:
            for name, token in asked.items():
                tokens = self._asked.get((kind, name))
                if tokens is not None:
                    tokens.discard(token)
                    if not tokens:
                        del self._asked[(kind, name)]

    def _still_asked(self, kind: str, name: str, asked: object) -> bool:
        """Not withdrawn by an unsubscribe handled since the request came (requests run as tasks: a subscribe
        whose read awaits is overtaken by the unsubscribe the page sent after it)."""
        return asked in self._asked.get((kind, name), ())

    async def _snapshot_and_join(self, device_id: str, request: str) -> None:
        """Send the pump's snapshot and join its room; when it cannot be read, an `error` naming the pump and
        the pump no longer counted (never a pump held as subscribed that sends nothing)."""
        try:
            await subscribe_with_snapshot(
                device_id, send=self.send, send_change=self.send_change, join=functools.partial(self._join, device_id),
                subscriber=self.subscriber_id, room=device_room(device_id),
                wanted=lambda: device_id in self.limits.devices,  # not unsubscribed while the snapshot was read
            )  # fmt: skip
        except (LookupError, DatabaseError) as error:  # removed since its access was checked; the database
            logger.warning("snapshot not read", extra={"device_id": device_id, "error": repr(error)[:200]})
            self.removed_unjoined.pop(device_id, None)
            self.limits.devices.discard(device_id)
            message = INVALID_DEVICE if isinstance(error, LookupError) else SNAPSHOT_FAILED
            await self.send(events.ERROR, error_body(message, request=request, deviceId=device_id))

    async def _not_read(self, device_ids: list[str], request: str, error: DatabaseError) -> None:
        """Pumps whose access could not be read (the database away for a moment): an `error` naming each, which the
        page asks again on ("subscribe again"), and none counted. The catch-all's "Internal error" names no pump: a
        monitor waited for a snapshot that was never coming, "Not live" until reloaded (review 40)."""
        logger.warning("subscription not read", extra={"device_ids": device_ids, "error": repr(error)[:200]})
        for device_id in device_ids:
            await self.send(events.ERROR, error_body(SNAPSHOT_FAILED, request=request, deviceId=device_id))

    async def _visible_devices(self) -> frozenset[str]:
        """The pumps this principal may watch, read once per `RIGHTS_RECHECK_S` however many requests come.

        A page subscribing to 20 pumps costs one query, not 20. A pump whose permission was withdrawn within
        that time can still be subscribed: `rights` re-checks every subscription each `RIGHTS_RECHECK_S` and
        unsubscribes it, as it does for a pump subscribed before its ward was taken away.
        """
        if time.monotonic() < self._visible_until:
            return self._visible
        if self._visible_read is None:
            self._visible_read = asyncio.get_running_loop().create_task(self._read_visible())
        return await asyncio.shield(self._visible_read)

    async def _read_visible(self) -> frozenset[str]:
        """One read for every request waiting meanwhile: they all resume together when it is done (under a lock
        they resumed one per turn of the event loop, 20 turns for a page's 20 `subscribe:device` in a storm)."""
        this_read = asyncio.current_task()
        try:
            visible = await db_thread(visible_device_ids)(self.principal)
        finally:
            still_current = self._visible_read is this_read  # not forgotten while it was read
            if still_current:
                self._visible_read = None
        if still_current:
            self._visible = visible
            self._visible_until = time.monotonic() + settings.PUMPSTREAM["RIGHTS_RECHECK_S"]
        return visible

    def forget_visible(self) -> None:
        """Read the visible pumps afresh at the next request (the rights re-check read them: a nudged one must
        not be undone by a set cached before the right was withdrawn, nor by a read under way since before)."""
        self._visible_until = 0.0
        self._visible_read = None

    async def _join(self, device_id: str, registration: int | None = None) -> None:
        """Join the pump's room once its snapshot was sent, unless the pump was removed meanwhile and the snapshot was
        of the removed registration (or older): then the pump is gone, and the page is told so (`error` naming it)."""
        if device_id in self.removed_unjoined:
            removed = self.removed_unjoined.pop(device_id)
            if registration is None or removed is None or registration <= removed:
                self.limits.devices.discard(device_id)
                await self.send(events.ERROR, error_body(PUMP_REMOVED, deviceId=device_id))
                return
        self.joined[device_id] = registration
        await self.join_device(device_id)

    async def unsubscribe_device(self, device_id: str) -> None:
        """Leave the pump's room; no more of its events arrive, not even from a subscribe sent before and still
        reading."""
        self._asked.pop(("device", device_id), None)
        self.limits.devices.discard(device_id)
        self.joined.pop(device_id, None)
        self.removed_unjoined.pop(device_id, None)
        await self.leave_device(device_id)

    async def subscribe_ward(self, ward: str) -> None:
        """Start a coalesced ward feed (an initial summary of every pump in it, then what changed)."""
        self.limits.check_ward_capacity(ward)
        with self._asking("ward", [ward]) as asked:
            try:
                scope = await db_thread(ward_scope)(self.principal, ward)
            except DatabaseError as error:
                await self._ward_not_read(ward, error)
                return
            if not self._still_asked("ward", ward, asked[ward]):  # unsubscribed while it was read
                return
        if isinstance(scope, str):
            raise RequestRefused(scope)
        # again after the read: requests sent together all found the cap free before it (as `_admit` for pumps)
        self.limits.check_ward_capacity(ward)
        await self.subscribe_ward_scope(ward, scope)

    async def subscribe_ward_scope(self, ward: str, scope: WardScope) -> None:
        """(Re)start the feed of `ward` covering `scope` (also when the principal's wards changed); never once the
        connection has closed (it may close while its request or its rights' re-check awaited a read)."""
        if self.closed:
            return
        self.limits.wards.add(ward)
        self.ward_scopes[ward] = scope
        try:
            await ward_feed.subscribe(f"{self.subscriber_id}|{ward}", scope, self.send)
        except BaseException as error:  # the feed kept nothing of it: neither does the connection
            if self.ward_scopes.get(ward) is scope:  # not subscribed anew meanwhile
                self.limits.wards.discard(ward)
                del self.ward_scopes[ward]
            if not isinstance(error, DatabaseError):
                raise
            await self._ward_not_read(ward, error)

    async def _ward_not_read(self, ward: str, error: DatabaseError) -> None:
        """A ward feed whose subscription could not be read (the database away for a moment): an `error` naming the
        ward, which the page asks again on ("subscribe again"). The catch-all's "Internal error" names no ward: the
        station waited for a full summary that was never coming, "Not live" until reloaded (review 40, F2)."""
        logger.warning("ward feed not read", extra={"ward": ward, "error": repr(error)[:200]})
        await self.send(events.ERROR, error_body(WARD_READ_FAILED, request=events.SUBSCRIBE_WARD, ward=ward))

    def unsubscribe_ward(self, ward: str) -> None:
        """Stop a ward feed (and a subscribe of it sent before and still reading)."""
        self._asked.pop(("ward", ward), None)
        self.limits.wards.discard(ward)
        self.ward_scopes.pop(ward, None)
        ward_feed.unsubscribe(f"{self.subscriber_id}|{ward}")

    def close(self) -> None:
        """Forget this connection's ward feeds (rooms and groups are left by the transport)."""
        self.closed = True
        for ward in list(self.limits.wards):
            self.unsubscribe_ward(ward)
