"""A connection whose client does not read is closed once too much waits unsent for it (review 23, finding 6).

Daphne writes what the application sends straight into the connection's Twisted transport, which keeps whatever
the network does not take, without a bound and without telling the application: a signed-in account's 20 sockets
that stopped reading (answering Engine.IO's pings blindly, so no heartbeat closes them) grew Daphne by 58 MB in 80 s
of one pump's progress, and a ward's traffic would grow it until the OOM killer stops every screen. Twisted tells a
streaming producer registered on a transport when its buffer passes 64 KiB (`pauseProducing`, on each write while
it is over) and when it has drained (`resumeProducing`). So each WebSocket (Socket.IO's and the Channels endpoint's
alike) registers an `UnsentBytesWatch` (Daphne's issue #170 proposes the same), which, each time the application
hands the connection bytes while its buffer is full, reads what waits in it and, past `SOCKET_UNSENT_MAX_BYTES`,
aborts it: the
buffer is dropped at once, the application sees the disconnect, the client reconnects and resubscribes, and its new
snapshot replaces what it held (docs/protocol.md). The long-polling transport queues in python-engineio instead
(`realtime/sio/engine_socket.py`), bounded by the same limit with `UnsentQueue`.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from prometheus_client import Counter
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SLOW_READERS_CLOSED = Counter(
    "pumpstream_realtime_slow_readers_closed_total",
    "Connections closed because more than SOCKET_UNSENT_MAX_BYTES waited unsent for a client that did not read them,"
    " by transport (websocket: Daphne's buffer, Socket.IO and /ws/devices/; polling: python-engineio's queue)",
    ["transport"],
)


def unsent_max_bytes() -> int:
    """The most a connection may have waiting beyond what its network takes (0: no bound)."""
    return settings.PUMPSTREAM["SOCKET_UNSENT_MAX_BYTES"]


@implementer(IPushProducer)
class UnsentBytesWatch:
    """Registered on one connection's Twisted transport: counts what is sent to it while its buffer is full."""

    def __init__(self, transport: Any, limit: int, describe: dict) -> None:
        self.transport = transport
        self.limit = limit
        self.describe = describe  # the log line's fields: path and client
        self.full = False
        self.sent_while_full = 0
        self.closed = False

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name); called on every write while over 64 KiB
        self.full = True

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted's name); the buffer has drained
        self.full = False
        self.sent_while_full = 0

    def stopProducing(self) -> None:  # noqa: N802 (Twisted's name); the connection is gone
        self.full = False

    def sent(self, nbytes: int) -> None:
        """`nbytes` were handed to the connection: abort it when the client is too far behind."""
        if not self.full or self.closed:
            return  # the network takes it, or the connection is already aborted
        self.sent_while_full += nbytes
        waiting = self.unsent()
        if waiting > self.limit:
            self.closed = True
            self.transport.abortConnection()  # drops what is buffered now; Daphne then tells the application
            slow_reader_closed("websocket", waiting, **self.describe)

    def unsent(self) -> int:
        """What waits in the transport's buffer now: Twisted's `FileDescriptor` keeps it in `dataBuffer` (from
        `offset`) and `_tempDataBuffer`; under a transport without them (TLS, another reactor), all that was sent
        while full. Not the sum sent while full alone: Twisted resumes the producer only once its buffer is EMPTY,
        so a client that reads, a little slower than a burst came, never empties it, and what the network took
        meanwhile would add up past the limit (review 25: a tablet reading 20 KB/s, sent 18 KB/s after a 200 KB
        subscription burst, was closed with at most 200 KB ever waiting)."""
        try:
            return len(self.transport.dataBuffer) - self.transport.offset + self.transport._tempDataLen
        except (AttributeError, TypeError):
            return self.sent_while_full


def slow_reader_closed(transport: str, unsent_bytes: int, **fields: Any) -> None:
    """Count and log one connection closed for not reading."""
    SLOW_READERS_CLOSED.labels(transport).inc()
    logger.warning(
        "slow reader closed: more than SOCKET_UNSENT_MAX_BYTES waited unsent for a client that did not read",
        extra={"transport": transport, "unsent_bytes": unsent_bytes, "limit": unsent_max_bytes(), **fields},
    )


def daphne_transport(send: Send) -> Any | None:
    """The Twisted transport under a Daphne connection's `send` (Daphne 4: `partial(Server.handle_reply,
    protocol)`), or None under another server."""
    args = getattr(send, "args", ())
    transport = getattr(args[0], "transport", None) if args else None
    if transport is None or not hasattr(transport, "registerProducer") or not hasattr(transport, "abortConnection"):
        return None
    return transport


def watch_unsent(transport: Any, limit: int, describe: dict) -> UnsentBytesWatch:
    """Register a watch on the connection's transport, in place of Daphne's HTTP channel (left registered on it
    when the request became a WebSocket, and idle since: its `pauseProducing` does nothing while the upgrade's
    request is unfinished, which it stays)."""
    watch = UnsentBytesWatch(transport, limit, describe)
    transport.unregisterProducer()
    transport.registerProducer(watch, True)
    return watch


class _Unbounded:
    """Warn once a process when the server gives no transport to watch."""

    warned = False


def websocket_unsent_bounded(app: ASGIApp) -> ASGIApp:
    """`app`, with each WebSocket aborted once more than `SOCKET_UNSENT_MAX_BYTES` waited unsent for its client."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        limit = unsent_max_bytes()
        if scope["type"] != "websocket" or not limit:
            return await app(scope, receive, send)
        transport = daphne_transport(send)
        if transport is None:
            if not _Unbounded.warned:
                _Unbounded.warned = True
                logger.warning("no Twisted transport under this server: what waits unsent for a WebSocket is unbounded")
            return await app(scope, receive, send)
        client = scope.get("client")
        describe = {"path": scope.get("path", ""), "client": f"{client[0]}:{client[1]}" if client else None}
        watch = watch_unsent(transport, limit, describe)  # Daphne creates the application once the handshake is read

        async def bounded_send(message: dict) -> None:
            await send(message)
            if watch.full:  # the normal path (the network takes everything) pays this test alone
                watch.sent(len(message.get("text") or message.get("bytes") or b""))

        return await app(scope, receive, bounded_send)

    return application


class UnsentQueue:
    """What waits in one python-engineio socket's queue, in bytes (the long-polling transport's buffer)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0

    def queued(self, data: Any) -> bool:
        """A packet of `data` was queued: True when the queue is now over the limit."""
        self.bytes += len(data) if isinstance(data, str | bytes) else 8
        return bool(self.limit) and self.bytes > self.limit

    def drained(self) -> None:
        """The queue was emptied (a poll took everything)."""
        self.bytes = 0
