"""The bridge writes its `wake` frame to the WebSocket itself: the very text `emit` would have the writer send.

The road end to end (a real Daphne woken by a real bridge): `tests/integration/realtime/test_wakes.py`.
"""

from engineio import packet as engineio_packet

from realtime import events
from realtime.bridge.notifier import PublisherWaker


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)


def emitted_frame(waker: PublisherWaker) -> str:
    """What `client.emit(wake)` hands to Engine.IO, as its writer thread would put it on the WebSocket."""
    handed: list[str] = []
    waker.client.namespaces = {events.INTERNAL_NAMESPACE: "sid"}
    waker.client.eio.send = handed.append
    waker.client.emit(events.INTERNAL_WAKE, namespace=events.INTERNAL_NAMESPACE)
    return engineio_packet.Packet(engineio_packet.MESSAGE, data=handed[0]).encode()


def test_the_wake_frame_is_what_emit_sends() -> None:
    waker = PublisherWaker("http://127.0.0.1:1", "secret")
    assert waker.frame_text == emitted_frame(PublisherWaker("http://127.0.0.1:1", "secret"))


def test_a_connected_websocket_gets_the_frame_from_the_committing_thread() -> None:
    waker = PublisherWaker("http://127.0.0.1:1", "secret")
    socket = FakeSocket()
    waker.client.eio.current_transport, waker.client.eio.state, waker.client.eio.ws = "websocket", "connected", socket
    waker.client.eio.queue.put = lambda packet: (_ for _ in ()).throw(AssertionError("queued for the writer thread"))
    waker._send()
    assert socket.sent == [waker.frame_text], "the wake should be written to the WebSocket at once"
    assert waker.sent == 1
