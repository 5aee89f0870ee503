"""A stand-in transport for unit tests of the real `Subscriber`: what it sent, which rooms it is in, and a
snapshot step that only joins (the snapshot's reads and sends are tested under a real Daphne)."""

import re
from pathlib import Path

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


def page_asks_again(message: str) -> bool:
    """Whether the browser asks again for a stream refused with this `error` message (`static/js/live.js`
    `SUBSCRIBE_LATER`): read from the page's code, so that the server's wording and the page's cannot drift apart."""
    live_js = (Path(__file__).resolve().parents[3] / "static" / "js" / "live.js").read_text()
    pattern = re.search(r"^const SUBSCRIBE_LATER = /(.+)/i;$", live_js, re.MULTILINE)
    assert pattern, "static/js/live.js no longer says which refusals it asks again after"
    return re.search(pattern.group(1), message, re.IGNORECASE) is not None
