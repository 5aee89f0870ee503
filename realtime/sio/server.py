"""The python-socketio server of the Daphne process, its client namespace and its wiring to the fan-out."""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from django.conf import settings
from django.contrib.auth.signals import user_logged_out

from devices.selectors import escalation_recipients
from devices.services.accounts import service_account_revoked
from devices.services.changelog import change_log_listen
from protocol.events import (
    ALARM_ESCALATED,
    ERROR,
    DeviceChange,
)
from protocol.ward_payloads import error_body
from realtime import server_metrics
from realtime.cluster import RECHECK, SILENCE, ClusterManager, cluster_manager
from realtime.deadlines import deadline_keeper
from realtime.fanout import fanout
from realtime.pg_notify import change_notify_listen
from realtime.publisher import publisher
from realtime.sio import delivery
from realtime.sio.auth import Principal, account_credential, authenticate, origin_allowed, session_hash
from realtime.sio.database import db_thread
from realtime.sio.escalation import escalation_target
from realtime.sio.frames import GuardedAsyncServer
from realtime.sio.internal import internal_server
from realtime.sio.rights import rights
from realtime.sio.subscriptions import Subscriber, device_room
from realtime.sio.ward_feed import ward_feed

logger = logging.getLogger(__name__)

sio = GuardedAsyncServer(
    async_mode="asgi",  # explicit: installing aiohttp would otherwise switch the mode (pitfalls.md)
    client_manager=cluster_manager(),  # Redis when REDIS_URL is set: nudges between the Daphne processes
    cors_allowed_origins=settings.SOCKETIO_CORS_ALLOWED_ORIGINS,  # None: same origin; never "*" or []
    logger=False,
    engineio_logger=False,
    # a silent network (Wi-Fi roaming, a NAT that lost its state) is noticed in seconds, not 45 s (docs/protocol.md)
    ping_interval=settings.SOCKETIO_PING_INTERVAL_S,
    ping_timeout=settings.SOCKETIO_PING_TIMEOUT_S,
)


class Runtime:
    """The event loop Daphne runs us on, captured on first use (Daphne sends no lifespan events)."""

    loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def bind(cls) -> None:
        """Remember the running loop and start the change publisher and the deadline keeper on it (idempotent)."""
        if cls.loop is None:
            cls.loop = asyncio.get_running_loop()
            publisher.start()
            deadline_keeper.start()  # command deadlines, while no bridge reports (realtime/deadlines.py)
            listener = change_notify_listen(publisher.wake)  # PostgreSQL: any process's commit wakes this publisher
            if listener is not None:
                server_metrics.change_notify_install(listener.connected.is_set)
        if not sio.manager_initialized:  # listen for nudges from the first socket of either transport on
            sio.manager_initialized = True  # (python-socketio would wait for the first Socket.IO connection)
            sio.manager.initialize()

    @classmethod
    def call_soon(cls, callback: Any, *args: Any) -> bool:
        """Run `callback(*args)` on the server's loop from any thread; False before the loop is known."""
        loop = cls.loop
        if loop is None or loop.is_closed():
            return False
        loop.call_soon_threadsafe(callback, *args)
        return True


def session_room(session_hash: str) -> str:
    """The room of every socket opened with one Django session (closed when it signs out)."""
    return f"session:{session_hash}"


class ClientNamespace(socketio.AsyncNamespace):
    """The default namespace: browsers and integrations subscribe to pumps and ward feeds here."""

    def __init__(self) -> None:
        super().__init__("/")
        self.subscribers: dict[str, Subscriber] = {}

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        Runtime.bind()
        origin = environ.get("HTTP_ORIGIN")
        if not origin_allowed(origin, scheme=environ.get("wsgi.url_scheme", "http"), host=environ.get("HTTP_HOST")):
            raise socketio.exceptions.ConnectionRefusedError("origin not allowed")
        principal = await authenticate(environ.get("HTTP_COOKIE"), auth)
        if principal is None:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        subscriber = self._subscriber(sid, principal)
        refusal = await rights.admit(sid, subscriber, close=lambda: self.disconnect(sid))
        if refusal is not None:
            raise socketio.exceptions.ConnectionRefusedError(refusal)
        self.subscribers[sid] = subscriber
        if principal.session_hash:
            await self.enter_room(sid, session_room(principal.session_hash))
        logger.info("client connected", extra={"sid": sid, "principal": principal.label})

    def _subscriber(self, sid: str, principal: Principal) -> Subscriber:
        async def send(event: str, payload: dict) -> None:
            await delivery.send_to_sid(sio, sid, delivery.event_packets(sio, event, payload))

        async def send_change(change: DeviceChange) -> None:
            await delivery.send_to_sid(sio, sid, delivery.change_packets(sio, change))

        async def join(device_id: str) -> None:
            await self.enter_room(sid, device_room(device_id))

        async def leave(device_id: str) -> None:
            await self.leave_room(sid, device_room(device_id))

        return Subscriber(principal, sid, send, join, leave, send_change=send_change)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        rights.release(sid)
        subscriber = self.subscribers.pop(sid, None)
        if subscriber is not None:
            subscriber.close()

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid, data = args[0], (args[1] if len(args) > 1 else None)
        subscriber = self.subscribers.get(sid)
        if subscriber is None:
            return None
        try:
            keep = await subscriber.handle(event, data)
        except Exception:  # one guarded catch-all per request: a bad request never takes the server down
            logger.exception("request failed", extra={"sid": sid, "event": str(event)[:40]})
            await subscriber.send(ERROR, error_body("Internal error", request=str(event)[:40]))
            keep = True
        if not keep:
            await self.disconnect(sid)
        return None


client_namespace = ClientNamespace()


async def strike_undecodable(eio_sid: str, reason: str) -> None:
    """An undecodable frame counts as a malformed request of its connection (closed past the limit)."""
    sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
    subscriber = client_namespace.subscribers.get(sid) if sid else None
    if subscriber is None:  # not even connected to a namespace yet: nothing to keep
        await sio.eio.disconnect(eio_sid)
        return
    if not await subscriber.reject_undecodable(reason):
        await sio.disconnect(sid)


sio.on_undecodable = strike_undecodable


async def deliver_to_rooms(change: DeviceChange, skip: frozenset[str]) -> None:
    """Fan-out target: the pump's Socket.IO room, minus subscribers whose snapshot already holds it."""
    await delivery.send_to_room(sio, device_room(change.device_id), delivery.change_packets(sio, change), skip)


async def deliver_escalation(change: DeviceChange, skip: frozenset[str]) -> None:
    """Fan-out target: an escalation goes as `alarm:escalated` to the sockets of its tier group's ward members."""
    target = escalation_target(change)
    if target is None:
        return
    group, ward_code, payload = target
    recipients = await db_thread(escalation_recipients)(group, ward_code)
    for sid, subscriber in list(client_namespace.subscribers.items()):
        user = subscriber.principal.user
        if subscriber.principal.account is None and user is not None and user.pk in recipients:
            await sio.emit(ALARM_ESCALATED, payload, to=sid)


async def close_session_sockets(session_hash: str) -> None:
    """Disconnect every socket opened with this Django session."""
    participants = list(sio.manager.get_participants("/", session_room(session_hash)))
    for sid, _eio_sid in participants:
        await sio.disconnect(sid)
    if participants:
        logger.info("closed sockets of a signed-out session", extra={"sockets": len(participants)})


sign_out_closers: list[Callable[[str], Awaitable[None]]] = [close_session_sockets]


async def _close_signed_out(session_hash: str) -> None:
    for closer in sign_out_closers:
        try:
            await closer(session_hash)
        except Exception:  # one transport failing to close must not keep the other's sockets open
            logger.exception("closing a signed-out session's connections failed")


def on_user_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """`user_logged_out` receiver: close the sockets opened with the session that signed out."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if not session_key:
        return
    closing = _close_signed_out(session_hash(session_key))
    if not Runtime.call_soon(_spawn, closing):
        closing.close()  # no loop yet, so no sockets to close


def on_service_account_revoked(sender: Any, account: Any = None, **kwargs: Any) -> None:
    """`service_account_revoked` receiver: close the sockets opened with the revoked token."""
    closing = _close_signed_out(account_credential(account.pk))
    if not Runtime.call_soon(_spawn, closing):
        closing.close()


def _spawn(coroutine: Any) -> None:
    asyncio.get_running_loop().create_task(coroutine)


def cluster_handlers_install(manager: ClusterManager) -> None:
    """What this process does on a nudge from Redis: re-check the named sockets, re-read the wards' silences."""
    manager.handlers[RECHECK] = rights.recheck_soon
    manager.handlers[SILENCE] = lambda wards: _spawn(ward_feed.refresh_silences())


internal_sio = internal_server(
    on_first_connect=Runtime.bind, wake_publisher=functools.partial(publisher.wake, "bridge")
)


def install() -> None:
    """Wire the Socket.IO server into this process: namespaces, the fan-out targets, the publisher's wake."""
    sio.register_namespace(client_namespace)
    if isinstance(sio.manager, ClusterManager):
        cluster_handlers_install(sio.manager)
    fanout.targets.append(deliver_to_rooms)
    fanout.targets.append(ward_feed.deliver_alarm)
    fanout.targets.append(deliver_escalation)
    fanout.release_listeners.append(ward_feed.mark_changed)
    fanout.delivered_listeners.append(rights.pump_removed)
    fanout.release_listeners.append(server_metrics.count_published)
    server_metrics.install(lambda: list(client_namespace.subscribers.values()), lambda: publisher.position,
                           fanout.backlog)  # fmt: skip
    change_log_listen(publisher.wake)  # this process's own commits (pages, admin) wake its publisher at once
    user_logged_out.connect(on_user_logged_out, dispatch_uid="realtime-close-signed-out-sockets")
    service_account_revoked.connect(on_service_account_revoked, dispatch_uid="realtime-close-revoked-token-sockets")
