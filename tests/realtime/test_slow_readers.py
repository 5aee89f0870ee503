"""What waits unsent for a client that does not read is bounded (`realtime/slow_readers.py`; review 23, finding 6).

A WebSocket: Daphne's transport tells the registered watch when its buffer is full and when it drained; what is sent
while it is full counts, and past `SOCKET_UNSENT_MAX_BYTES` the connection is aborted (its buffer dropped), logged
and counted. Long polling: python-engineio's queue is bounded the same way. The real Daphne and clients are in
tests/integration/hostile/test_slow_reader.py.
"""

import asyncio
import functools
import logging

import engineio
from engineio import packet

from realtime.sio.engine_socket import PromptAsyncSocket
from realtime.slow_readers import SLOW_READERS_CLOSED, UnsentBytesWatch, websocket_unsent_bounded

LIMIT = 1000


class FakeTransport:
    """The part of a Twisted TCP transport the watch uses; starts with Daphne's HTTP channel as its producer."""

    def __init__(self) -> None:
        self.producer: object | None = "daphne's HTTP channel"
        self.aborted = 0

    def unregisterProducer(self) -> None:  # noqa: N802 (Twisted's name)
        self.producer = None

    def registerProducer(self, producer: object, streaming: bool) -> None:  # noqa: N802 (Twisted's name)
        assert self.producer is None, "Twisted refuses a second producer"
        assert streaming, "a push producer, told when the buffer is full"
        self.producer = producer

    def abortConnection(self) -> None:  # noqa: N802 (Twisted's name)
        self.aborted += 1


def closed_count(transport: str) -> float:
    return SLOW_READERS_CLOSED.labels(transport)._value.get()


def test_what_is_sent_while_the_buffer_is_full_counts_and_past_the_limit_the_connection_is_aborted(caplog):
    transport = FakeTransport()
    watch = UnsentBytesWatch(transport, LIMIT, {"path": "/socket.io/", "client": "10.0.0.5:5000"})
    before = closed_count("websocket")
    watch.sent(5 * LIMIT)  # the network takes it: nothing counts
    watch.pauseProducing()
    watch.sent(600)
    watch.pauseProducing()  # Twisted calls it on every write while full: the count goes on
    watch.sent(400)
    assert transport.aborted == 0, "at the limit, not past it: a slow client keeps its connection"
    watch.resumeProducing()  # it read everything: a new count
    watch.pauseProducing()
    watch.sent(LIMIT)
    assert transport.aborted == 0, "the bytes before the buffer drained must not count again"
    with caplog.at_level(logging.WARNING, logger="realtime.slow_readers"):
        watch.sent(1)
        watch.sent(500)
    assert transport.aborted == 1, "past the limit the connection is aborted, once"
    assert closed_count("websocket") == before + 1, "counted once in pumpstream_realtime_slow_readers_closed_total"
    (record,) = [r for r in caplog.records if r.name == "realtime.slow_readers"]
    assert record.unsent_bytes == LIMIT + 1 and record.client == "10.0.0.5:5000", "the log line says who and how much"


def test_each_websocket_of_daphne_is_watched_from_its_start(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "SOCKET_UNSENT_MAX_BYTES": LIMIT}
    transport = FakeTransport()
    protocol = type("DaphneWebSocketProtocol", (), {"transport": transport})()
    handed: list[dict] = []

    async def handle_reply(protocol: object, message: dict) -> None:  # Daphne's `Server.handle_reply`
        handed.append(message)

    async def app(scope, receive, send) -> None:
        assert isinstance(transport.producer, UnsentBytesWatch), "the watch replaced Daphne's idle HTTP channel"
        await send({"type": "websocket.accept"})
        for _ in range(3):
            await send({"type": "websocket.send", "text": "x" * 400})
            transport.producer.pauseProducing()  # the network took nothing more
        await send({"type": "websocket.send", "bytes": b"y" * 400})

    scope = {"type": "websocket", "path": "/ws/devices/", "client": ("127.0.0.1", 4000)}
    asyncio.run(websocket_unsent_bounded(app)(scope, None, functools.partial(handle_reply, protocol)))
    assert len(handed) == 5, "every message still reaches Daphne"
    assert transport.aborted == 1, "1,200 bytes sent while full, over a limit of 1,000: aborted"


def test_an_http_request_or_another_server_is_left_alone(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "SOCKET_UNSENT_MAX_BYTES": LIMIT}
    sent: list[dict] = []

    async def plain_send(message: dict) -> None:  # no transport behind it (another ASGI server, a test client)
        sent.append(message)

    async def app(scope, receive, send) -> None:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "x" * 5 * LIMIT})

    asyncio.run(websocket_unsent_bounded(app)({"type": "websocket", "path": "/ws/devices/"}, None, plain_send))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send"]


def polling_socket(closed: list[str]) -> PromptAsyncSocket:
    server = engineio.AsyncServer(async_mode="asgi")

    async def on_disconnect(sid: str, reason: object) -> None:
        closed.append(sid)

    server.on("disconnect", on_disconnect)
    socket = PromptAsyncSocket(server, "sid")
    socket.connected = True
    return socket


def test_a_long_polling_client_that_stops_polling_is_closed_past_the_limit(settings, caplog):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "SOCKET_UNSENT_MAX_BYTES": LIMIT}
    closed: list[str] = []
    before = closed_count("polling")

    async def main() -> PromptAsyncSocket:
        socket = polling_socket(closed)
        for _ in range(4):
            await socket.send(packet.Packet(packet.MESSAGE, data="x" * 240))
        polled = await socket.poll()  # a client that polls keeps its queue short
        assert len(polled) == 4 and not closed
        for _ in range(4):
            await socket.send(packet.Packet(packet.MESSAGE, data="x" * 240))
        assert not closed and socket.queue.qsize() == 4, "960 bytes waiting, within the limit"
        with caplog.at_level(logging.WARNING, logger="realtime.slow_readers"):
            for _ in range(10):  # it stops polling
                await socket.send(packet.Packet(packet.MESSAGE, data="x" * 240))
            await asyncio.sleep(0)
        return socket

    socket = asyncio.run(main())
    assert closed == ["sid"] and socket.closed, "a client that does not poll is closed past the limit"
    assert socket.queue.qsize() == 4, "nothing more is queued for it once over the limit"
    assert closed_count("polling") == before + 1
    assert any(r.name == "realtime.slow_readers" for r in caplog.records), "and logged"


def test_a_websocket_burst_queued_in_one_step_is_left_to_daphnes_bound(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "SOCKET_UNSENT_MAX_BYTES": LIMIT}
    closed: list[str] = []

    async def main() -> PromptAsyncSocket:
        socket = polling_socket(closed)
        socket.upgraded = True  # its writer empties the queue into Daphne's transport, watched there
        for _ in range(10):
            await socket.send(packet.Packet(packet.MESSAGE, data="x" * 240))
        await asyncio.sleep(0)
        return socket

    socket = asyncio.run(main())
    assert not closed and socket.queue.qsize() == 10, "a WebSocket is not closed for what its queue holds for a moment"
