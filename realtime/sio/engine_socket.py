"""An Engine.IO socket that reads a connection's queued WebSocket frames in one step of the event loop.

python-engineio's WebSocket handler (4.15) reads each frame through a task of its own awaited with
`asyncio.wait_for`: three turns of the event loop per frame (the task's step, its done callback, the
handler's wake-up), even when the next frames already wait in Daphne's receive queue. In a reconnect storm
(issue 17: 100 clients sending 20 `subscribe:device` each, every loop turn tens of ms long) a client's 20
requests then reached the server over 0.8 s, one every three turns, and its snapshots were read in as many
batches. Here a frame is awaited directly under `asyncio.timeout`: frames already queued are read in the
same step (each still handed to python-socketio in order, each request still a task of its own), and
`READ_BURST` frames in a row let the loop's other work in. The writer's `poll` waits the same way.
What waits in a socket's queue is bounded (`SOCKET_UNSENT_MAX_BYTES`): a long-polling client that stops polling but
still POSTs its PONGs is closed once more than that waits for it (review 23, finding 6; a WebSocket's queue is
drained at once into Daphne's buffer, bounded in `realtime/slow_readers.py`).
Everything else is python-engineio's own (`engineio.async_socket.AsyncSocket`).
"""

import asyncio
import logging

from engineio import async_socket, exceptions, packet

from realtime.slow_readers import UnsentQueue, slow_reader_closed, unsent_max_bytes

logger = logging.getLogger(__name__)

READ_BURST = 32  # frames read in one step before the loop's other work gets a turn


class PromptAsyncSocket(async_socket.AsyncSocket):
    """`AsyncSocket` whose WebSocket reads and writer waits take no task per frame."""

    unsent: UnsentQueue | None = None
    dropped_for_not_reading = False

    def _idle_timeout(self) -> float:
        return self.server.ping_interval + self.server.ping_timeout

    async def send(self, pkt):
        """Queue a packet for the client (as `AsyncSocket.send`); on long polling, past the unsent bound the socket is
        closed. A WebSocket's writer hands its queue to Daphne at its next turn, whose buffer is bounded instead: a
        burst queued in one step (a subscription's snapshots) is no sign of a client that does not read."""
        if not self.upgraded and self._over_unsent_bound(pkt):
            return
        if await self.check_ping_timeout():  # python-engineio's own, without its info log per packet (logger off)
            await self.queue.put(pkt)

    def _over_unsent_bound(self, pkt: packet.Packet) -> bool:
        """Count a packet queued for a polling client; past the bound, close it (once) and queue nothing more."""
        if self.unsent is None:
            self.unsent = UnsentQueue(unsent_max_bytes())
        if self.dropped_for_not_reading:
            return True
        if not self.unsent.queued(pkt.data):
            return False
        self.dropped_for_not_reading = True
        slow_reader_closed("polling", self.unsent.bytes, eio_sid=self.sid)
        # in a task of its own: the disconnect handlers must not run inside a delivery (under a pump's lock)
        asyncio.get_running_loop().create_task(self.close(wait=False, abort=True))
        return True

    async def poll(self):
        """Wait for packets to send to the client (as `AsyncSocket.poll`, without a task per wait)."""
        try:
            async with asyncio.timeout(self._idle_timeout()):
                first = await self.queue.get()
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        if first is None:
            return []
        packets = [first]
        while True:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        if self.unsent is not None:
            self.unsent.drained()
        return packets

    async def _websocket_handler(self, ws):
        """Engine.IO over a WebSocket (as `AsyncSocket._websocket_handler`); frames read without a task each."""

        async def websocket_wait():
            data = await ws.wait()
            if data and len(data) > self.server.max_http_buffer_size:
                raise ValueError("packet is too large")
            return data

        if self.connected:
            # the socket was already connected, so this is an upgrade
            self.upgrading = True  # hold packet sends during the upgrade
            try:
                pkt = await websocket_wait()
            except OSError:  # pragma: no cover
                return
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.PING or decoded_pkt.data != "probe":
                self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return
            await ws.send(packet.Packet(packet.PONG, data="probe").encode())
            await self.queue.put(packet.Packet(packet.NOOP))  # end poll
            try:
                pkt = await websocket_wait()
            except OSError:  # pragma: no cover
                self.upgrading = False
                return
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.UPGRADE:
                self.upgraded = False
                self.server.logger.info("%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                                        self.sid, pkt)  # fmt: skip
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True

        async def writer():
            while True:
                try:
                    packets = await self.poll()
                except exceptions.QueueEmpty:
                    break
                if not packets:  # empty packet list returned -> connection closed
                    break
                try:
                    for pkt in packets:
                        await ws.send(pkt.encode())
                except Exception:  # the connection is gone: the writer ends (python-engineio's bare except)
                    logger.debug("websocket send failed", extra={"eio_sid": self.sid}, exc_info=True)
                    break
            await ws.close()

        writer_task = asyncio.ensure_future(writer())
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)
        await self._read_frames(websocket_wait)
        await self.queue.put(None)  # unlock the writer task so it can exit
        await writer_task
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    async def _read_frames(self, websocket_wait) -> None:
        """Hand each frame to `receive` as it comes, until the client closes, goes silent or the read fails."""
        in_a_row = 0
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout()):
                    p = await websocket_wait()
            except (OSError, ValueError, TimeoutError, asyncio.CancelledError):  # closed, silent, frame too large
                break
            except Exception:  # anything else ends the connection too (python-engineio's bare except), logged
                logger.exception("websocket read failed", extra={"eio_sid": self.sid})
                break
            if p is None:  # connection closed by client
                break
            pkt = packet.Packet(encoded_packet=p)
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:  # pragma: no cover
                pass
            except exceptions.SocketIsClosedError:  # pragma: no cover
                self.server.logger.info("Receive error -- socket is closed")
                break
            except Exception:  # pragma: no cover
                # as python-engineio: log it and go on reading
                self.server.logger.exception("Unknown receive error")
            in_a_row += 1
            if in_a_row >= READ_BURST:
                in_a_row = 0
                await asyncio.sleep(0)
