"""A TCP proxy between an MQTT client and the broker that can swallow the client's PUBLISH packets and cut links.

For "a command the broker never acknowledged must never reach the pump": the bridge talks to the
broker through it; while `swallow_publish` is set, the bridge's PUBLISH packets vanish (the broker
never sees them, so no PUBACK comes back); `cut()` closes every connection so the bridge reconnects
(where paho would resend whatever it still held).
"""

import asyncio
import contextlib
import threading

from tests.support.processes import free_port, wait_for_port

PUBLISH = 3


class MqttProxy:
    """One asyncio event loop in a daemon thread, forwarding 127.0.0.1:`port` to the broker."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.swallow_publish = False
        self.swallowed = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mqtt-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "MqttProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=5)
        wait_for_port(self.port)
        return self

    def cut(self) -> None:
        """Close every proxied connection (both sides); new connections are accepted as before."""
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=5)

    def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        broker_reader, broker_writer = await asyncio.open_connection(*self.target)
        self._writers |= {client_writer, broker_writer}
        await asyncio.gather(self._upstream(client_reader, broker_writer), self._pipe(broker_reader, client_writer),
                             return_exceptions=True)  # fmt: skip
        for writer in (client_writer, broker_writer):
            writer.close()
            self._writers.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Client → broker, packet by packet, leaving out PUBLISH packets while swallowing."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                first = await reader.readexactly(1)
                length_bytes, length = b"", 0
                for shift in range(0, 28, 7):
                    byte = await reader.readexactly(1)
                    length_bytes += byte
                    length |= (byte[0] & 0x7F) << shift
                    if not byte[0] & 0x80:
                        break
                body = await reader.readexactly(length)
                if first[0] >> 4 == PUBLISH and self.swallow_publish:
                    self.swallowed += 1
                    continue
                writer.write(first + length_bytes + body)
                await writer.drain()
        writer.close()
