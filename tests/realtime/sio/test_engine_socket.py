"""The Engine.IO socket's WebSocket reader (`realtime/sio/engine_socket.py`) hands frames already queued to
python-socketio in one step of the event loop, in order (python-engineio's own took three loop turns per frame:
in a storm a page's 20 `subscribe:device` reached the server over 0.8 s); it still lets the loop in every
`READ_BURST` frames, ends when the client closes or stays silent, and its writer sends what was queued."""

import asyncio

import engineio
import pytest
from engineio import packet

from realtime.sio.engine_socket import READ_BURST, PromptAsyncSocket


class QueuedWebSocket:
    """A WebSocket whose incoming frames are already queued (as in Daphne's receive queue); records sends."""

    def __init__(self, frames: list[str | None]) -> None:
        self.incoming: asyncio.Queue = asyncio.Queue()
        for frame in frames:
            self.incoming.put_nowait(frame)
        self.sent: list[str] = []
        self.closed = False

    async def wait(self) -> str | None:
        return await self.incoming.get()

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        self.closed = True


def a_socket(received: list[str], *, ping_interval: float = 25, ping_timeout: float = 20) -> PromptAsyncSocket:
    server = engineio.AsyncServer(async_mode="asgi", ping_interval=ping_interval, ping_timeout=ping_timeout)

    async def on_message(sid: str, data: str) -> None:
        received.append(data)

    server.on("message", on_message)
    server.async_handlers = False  # the handler runs in the reader's step: what it received, when, is observable
    return PromptAsyncSocket(server, "sid")


def message_frame(number: int) -> str:
    return packet.Packet(packet.MESSAGE, data=f"request {number}").encode()


def test_frames_already_queued_are_handed_over_in_one_step_in_order():
    received: list[str] = []
    seen_by_the_next_turn: list[int] = []

    async def main() -> None:
        socket = a_socket(received)
        frames = [message_frame(number) for number in range(20)]
        ws = QueuedWebSocket([*frames, None])
        asyncio.get_running_loop().call_soon(lambda: seen_by_the_next_turn.append(len(received)))
        await socket._websocket_handler(ws)

    asyncio.run(main())
    assert received == [f"request {number}" for number in range(20)], "frames lost or reordered"
    assert seen_by_the_next_turn == [20], (
        f"only {seen_by_the_next_turn} of 20 queued frames were read before the loop's next turn"
    )


def test_a_long_burst_lets_the_loop_in_every_read_burst_frames():
    received: list[str] = []
    seen_by_the_next_turn: list[int] = []

    async def main() -> None:
        socket = a_socket(received)
        ws = QueuedWebSocket([*(message_frame(number) for number in range(3 * READ_BURST)), None])
        asyncio.get_running_loop().call_soon(lambda: seen_by_the_next_turn.append(len(received)))
        await socket._websocket_handler(ws)

    asyncio.run(main())
    assert len(received) == 3 * READ_BURST
    assert seen_by_the_next_turn == [READ_BURST], f"the loop got its turn after {seen_by_the_next_turn} frames"


def test_a_silent_client_ends_the_reader_after_the_ping_timeout_and_the_writer_sends_what_was_queued():
    received: list[str] = []

    async def main() -> QueuedWebSocket:
        socket = a_socket(received, ping_interval=0.05, ping_timeout=0.05)
        ws = QueuedWebSocket([message_frame(1)])  # then nothing: no close either
        await socket.send(packet.Packet(packet.MESSAGE, data="an event"))
        await asyncio.wait_for(socket._websocket_handler(ws), 5)
        return ws

    ws = asyncio.run(main())
    assert received == ["request 1"]
    assert ws.sent[0] == packet.Packet(packet.MESSAGE, data="an event").encode(), ws.sent
    assert ws.closed, "the WebSocket was not closed after the client went silent"


@pytest.mark.parametrize("queued", [0, 3])
def test_poll_returns_what_is_queued_then_empty_once_closed(queued: int):
    async def main() -> tuple[list, list]:
        socket = a_socket([])
        for number in range(queued):
            await socket.send(packet.Packet(packet.MESSAGE, data=f"event {number}"))
        await socket.queue.put(None)
        first = await socket.poll() if queued else []
        return first, await socket.poll()

    first, after_close = asyncio.run(main())
    assert [pkt.data for pkt in first] == [f"event {number}" for number in range(queued)]
    assert after_close == [], "poll after the closing None must return no packets"


def test_the_servers_engine_io_sockets_read_promptly():
    from engineio.async_socket import AsyncSocket

    from realtime.sio.frames import GuardedAsyncServer

    server = GuardedAsyncServer(async_mode="asgi")
    socket = server.eio.sockets["eio-sid"] = AsyncSocket(server.eio, "eio-sid")
    asyncio.run(server._handle_eio_connect("eio-sid", {}))
    assert type(socket) is PromptAsyncSocket, "a connection of the Socket.IO server reads with python-engineio's reader"
