"""A stand-in transport for unit tests of the real `Subscriber`: what it sent, which rooms it is in, and a
snapshot step that only joins (the snapshot's reads and sends are tested under a real Daphne)."""

from realtime.sio.auth import Principal
from realtime.sio.subscriptions import Subscriber


class FakeTransport:
    """Records the `error`s and events sent and the rooms joined of one connection."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.joined: set[str] = set()

    async def send(self, event: str, body: dict) -> None:
        self.sent.append((event, body))

    async def join(self, device_id: str) -> None:
        self.joined.add(device_id)

    async def leave(self, device_id: str) -> None:
        self.joined.discard(device_id)

    def subscriber(self, principal: Principal | None = None) -> Subscriber:
        """A real `Subscriber` on this transport."""
        return Subscriber(principal or Principal(user=object()), "sid", self.send, self.join, self.leave)

    def messages(self) -> list[str]:
        """The messages of the `error`s sent, in order."""
        return [body["message"] for _, body in self.sent]


async def snapshot_and_join(device_id: str, *, join, **_: object) -> int:
    """Replaces `subscribe_with_snapshot`: join at once."""
    await join()
    return 0
