"""The unsent-bytes bound (`realtime/slow_readers.py`, review 23 finding 6) closed a client that READS, with far less
than SOCKET_UNSENT_MAX_BYTES ever waiting for it (review 25, finding 8).

`UnsentBytesWatch` counted every byte handed to the connection from Twisted's `pauseProducing` (the buffer passed 64
KiB) until `resumeProducing`, which Twisted calls only when the buffer has drained COMPLETELY
(`abstract.FileDescriptor.doWrite`: `offset == len(dataBuffer) and not _tempDataLen`). What the network took
meanwhile was never taken off. A nurse's tablet on a slow Wi-Fi that reads 20 KB/s while her ward sends it 18 KB/s
never lets the buffer empty after one burst (a subscription's snapshots, 200 KB): it drains at 2 KB/s, and over
those ~100 s the 18 KB/s she keeps reading added up past 1 MiB "unsent". Her screen was cut off (and, reconnecting,
got the same burst again), though at most ~200 KB ever waited. Now the watch reads what waits in the transport. Here
Twisted's own `FileDescriptor` buffering runs, with a socket that takes 20 KB a second (or nothing: still closed).
"""

from collections.abc import Callable

import pytest
from twisted.internet.abstract import FileDescriptor

from realtime.slow_readers import UnsentBytesWatch

LIMIT = 1024 * 1024  # SOCKET_UNSENT_MAX_BYTES's default


class SlowSocket(FileDescriptor):
    """Twisted's buffering (write, doWrite, producer pause and resume) over a socket taking `per_tick` bytes a tick."""

    def __init__(self) -> None:
        super().__init__()
        self.connected = True
        self.per_tick = 0
        self.aborted = False

    def writeSomeData(self, data: bytes) -> int:  # noqa: N802 (Twisted's name)
        return min(len(data), self.per_tick)

    def startWriting(self) -> None:  # noqa: N802 (Twisted's name): no reactor here; `tick` writes
        pass

    def stopWriting(self) -> None:  # noqa: N802 (Twisted's name)
        pass

    def abortConnection(self) -> None:  # noqa: N802 (Twisted's name)
        self.aborted = True

    def unsent(self) -> int:
        return len(self.dataBuffer) - self.offset + self._tempDataLen


def watched() -> tuple[SlowSocket, UnsentBytesWatch, Callable[[int], None]]:
    socket = SlowSocket()
    watch = UnsentBytesWatch(socket, LIMIT, {"path": "/socket.io/", "client": "tablet"})
    socket.registerProducer(watch, True)

    def send(nbytes: int) -> None:  # what `websocket_unsent_bounded.bounded_send` does after Daphne's write
        socket.write(b"x" * nbytes)
        if watch.full:
            watch.sent(nbytes)

    return socket, watch, send


@pytest.mark.parametrize("seconds", [150])
def test_a_client_that_reads_faster_than_it_is_sent_to_is_not_closed(seconds):
    socket, watch, send = watched()

    for _ in range(50):  # the subscription's snapshots: 200 KB at once
        send(4_000)
    most_unsent = socket.unsent()
    for _ in range(seconds * 10):  # then the ward's traffic, 18 KB/s in 450-byte events; the tablet reads 20 KB/s
        for _ in range(4):
            send(450)
        socket.per_tick = 2_000
        socket.doWrite()
        most_unsent = max(most_unsent, socket.unsent())
        if socket.aborted:
            break
    assert not socket.aborted, (
        f"a client reading 20 KB/s while sent 18 KB/s was closed for 'more than {LIMIT} bytes unsent' though at most "
        f"{most_unsent} bytes ever waited for it (counted: {watch.sent_while_full})"
    )
    assert socket.unsent() < 2_000, "precondition: it caught up"


def test_a_client_that_reads_nothing_is_still_closed_once_the_limit_waits():
    socket, _, send = watched()
    for _ in range(LIMIT // 4_000 + 2):
        send(4_000)
        if socket.aborted:
            break
    assert socket.aborted and LIMIT < socket.unsent() <= LIMIT + 4_000, (
        f"a client reading nothing, {socket.unsent()} bytes waiting: aborted {socket.aborted}"
    )
