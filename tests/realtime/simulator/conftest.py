"""A simulated pump whose MQTT link only records what it would publish (unit tests; no broker)."""

import pytest

from realtime.simulator.device import PumpSettings, SimulatedPump
from realtime.simulator.messages import Message


class RecordingLink:
    """Stands in for `PumpLink`: keeps every published message in order."""

    def __init__(self) -> None:
        self.published: list[Message] = []
        self.connected = True
        self.subscriptions: list[str] = []

    def publish(self, message: Message) -> None:
        self.published.append(message)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscriptions.append(topic)

    def start(self) -> None:
        self.connected = True

    def drop(self) -> None:
        self.connected = False

    def close(self) -> None:
        self.connected = False


@pytest.fixture
def make_pump():
    def make(device_id: str = "PUMP_0001", **settings) -> SimulatedPump:
        pump = SimulatedPump(PumpSettings(device_id=device_id, **settings), {"HOST": "127.0.0.1", "PORT": 1})
        pump.link = RecordingLink()
        return pump

    return make
