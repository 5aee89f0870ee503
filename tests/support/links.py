"""Stand-ins for the bridge's broker link in unit tests of the outbox (no broker)."""

import json
import threading


class RecordingLink:
    """A broker link that is connected and keeps what it is asked to publish (no broker)."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.connected.set()
        self.published: list[dict] = []

    def publish(self, topic: str, body: bytes, *, expiry_s: int) -> int:
        self.published.append(json.loads(body))
        return len(self.published)

    def forget(self, mid: int) -> None:
        pass
