"""The bridge's internal road into Daphne: its own listener, its own Socket.IO server, the "/internal" namespace.

It carries wakes only: the bridge says "I committed changes" and Daphne's publisher reads the change log
(`realtime/publisher.py`). A wake names no change and its payload is ignored, so even a client holding the
secret cannot put a change on a screen or use up a `seq`: only a committed row of the log can.

The road is never on the public listener. Daphne listens twice (`docs/operations.md`): the public endpoint
serves pages, `/socket.io/` (clients only) and `/ws/`; a second endpoint bound to loopback on
`REALTIME_INTERNAL_PORT` serves only this server, which has only the "/internal" namespace and accepts only
the bridge's per-install secret. `pumpstream/asgi.py` routes each connection by the address it arrived on
(the ASGI scope's `server`), so no request to the public listener, whatever its path or secret, reaches it.
"""

import hmac
import logging
from typing import Any

import socketio
from django.conf import settings

from realtime.events import INTERNAL_NAMESPACE, INTERNAL_WAKE
from realtime.sio.frames import GuardedAsyncServer

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})


def arrived_on_internal_listener(scope: dict) -> bool:
    """Whether a connection came in on the internal listener (loopback, `REALTIME_INTERNAL_PORT`)."""
    server = scope.get("server")
    if not server or len(server) != 2:
        return False  # a Unix socket or an unknown endpoint: the public side
    host, port = server
    return port == settings.REALTIME_INTERNAL_PORT and str(host) in LOOPBACK_HOSTS


def secret_matches(auth: Any) -> bool:
    """Whether `auth` carries the bridge's secret (constant-time; an unset secret matches nothing)."""
    expected = settings.BRIDGE_INTERNAL_SECRET
    offered = auth.get("secret") if isinstance(auth, dict) else None
    if not expected or not isinstance(offered, str):
        return False
    return hmac.compare_digest(offered.encode(), expected.encode())


class InternalNamespace(socketio.AsyncNamespace):
    """Accepts only the bridge (its secret) and only `wake`, which makes the publisher read the log now."""

    def __init__(self, on_first_connect: Any = None, wake_publisher: Any = None) -> None:
        super().__init__(INTERNAL_NAMESPACE)
        self.on_first_connect = on_first_connect
        self.wake_publisher = wake_publisher

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        if not arrived_on_internal_listener(environ.get("asgi.scope") or {}):
            logger.warning("refused an internal connection that did not come in on the internal listener")
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        if not secret_matches(auth):
            logger.warning("refused an internal connection without the bridge secret")
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        if self.on_first_connect is not None:
            self.on_first_connect()
        logger.info("bridge connected", extra={"sid": sid})

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        logger.info("bridge disconnected", extra={"sid": sid})

    async def on_wake(self, sid: str, data: Any = None) -> None:
        # The payload is ignored: what to publish is read from the committed change log, never taken from here.
        if self.wake_publisher is not None:
            self.wake_publisher()

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect", INTERNAL_WAKE):
            return await super().trigger_event(event, *args)
        logger.warning("unknown internal event", extra={"event": str(event)[:40]})
        return None


def internal_server(on_first_connect: Any = None, wake_publisher: Any = None) -> socketio.AsyncServer:
    """The Socket.IO server of the internal listener: the "/internal" namespace and nothing else."""
    # async_handlers=False: a `wake` runs in the frame's own step, not in a task of its own (one per wake); its
    # handler never awaits (it sets the publisher's event), so the bridge's next frames wait for nothing.
    server = GuardedAsyncServer(async_mode="asgi", cors_allowed_origins=None, logger=False, engineio_logger=False,
                                async_handlers=False)  # fmt: skip
    server.register_namespace(InternalNamespace(on_first_connect=on_first_connect, wake_publisher=wake_publisher))
    return server
