"""A TCP proxy to Daphne that can go silent without closing anything: a black-holed network (review 20).

Wi-Fi roaming, a NAT or firewall that lost its state, or a stalled VPN stop carrying packets while both
ends still hold their connections. While `dropping` is set, bytes both ways vanish; nothing is closed, so
only a heartbeat can tell. New connections made while dropping are accepted and black-holed too.
"""

import asyncio
import threading

from tests.support.processes import free_port, wait_for_port


class BlackHoleProxy:
    """127.0.0.1:`port` forwarded to 127.0.0.1:`target_port`, one asyncio loop in a daemon thread."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.dropping = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="black-hole", daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "BlackHoleProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=5)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers |= {client_writer, server_writer}
            await asyncio.gather(
                self._pipe(client_reader, server_writer),
                self._pipe(server_reader, client_writer),
                return_exceptions=True,
            )
        except (asyncio.CancelledError, ConnectionError):
            return  # torn down at the end of the test

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.dropping:
                writer.write(data)
                await writer.drain()
        writer.close()


class StallingProxy(BlackHoleProxy):
    """A network that stalls as TCP has it (review 32): while `stalled`, bytes both ways wait (retransmitted), and
    once it recovers they go on, in order. A request sent into the stall arrives late, never lost."""

    stalled = False

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            while self.stalled:
                await asyncio.sleep(0.05)
            writer.write(data)
            await writer.drain()
        writer.close()
