"""What the alarm and read-back scenarios share: a pump of its own, a nurse watching it, and waiting on both."""

import uuid
from dataclasses import dataclass

from devices.models import Alarm, Device
from realtime import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until
from tests.support.sio import StreamClient, session_cookie

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip


@dataclass
class Bedside:
    """One pump (a fresh id per test: Daphne's per-pump order survives the database flush), its nurse's screen."""

    device: Device
    nurse: object
    pump: PumpClient
    screen: StreamClient

    @property
    def device_id(self) -> str:
        return self.device.device_id

    def alarm_event(self, predicate, *, start: int = 0, timeout: float = 10.0) -> dict:
        """The first `device:alarm` of this pump (from event index `start`) whose alarm satisfies `predicate`."""
        return self.screen.events.wait_for(
            lambda name, data: name == events.DEVICE_ALARM and data.get("deviceId") == self.device_id
            and predicate(data["alarm"]), start=start, timeout=timeout,
        )["alarm"]  # fmt: skip

    def notification_for(self, alarm_id: int, *, start: int = 0, timeout: float = 10.0) -> dict:
        """The first `device:notification` of this alarm (from event index `start`)."""
        return self.screen.events.wait_for(
            lambda name, data: name == events.DEVICE_NOTIFICATION and data.get("deviceId") == self.device_id
            and data["notification"]["data"]["alarmId"] == alarm_id, start=start, timeout=timeout,
        )["notification"]  # fmt: skip

    def notifications(self) -> list[dict]:
        return [data["notification"] for data in self.screen.events.named(events.DEVICE_NOTIFICATION,
                                                                           device_id=self.device_id)]  # fmt: skip

    def mark(self) -> int:
        """The index of the next event this screen receives."""
        return len(self.screen.events.items)

    def alarm(self, **filters) -> Alarm:
        return wait_until(lambda: Alarm.objects.filter(device=self.device, **filters).first(),
                          message=f"no alarm {filters} in the database")  # fmt: skip


def bedside_open(broker_url: str, daphne_url: str, *, prefix: str = "CLIN") -> Bedside:
    """A registered pump, a nurse of its ward, her Socket.IO screen subscribed to it, and the pump's MQTT client."""
    ward = make_ward(f"w{uuid.uuid4().hex[:6]}")
    device = make_device(f"{prefix}_{uuid.uuid4().hex[:8].upper()}", ward=ward)
    nurse = make_user(f"nurse{uuid.uuid4().hex[:6]}", ward=ward)
    screen = StreamClient(daphne_url, cookie=session_cookie(nurse)).connect()
    kind, reply = screen.subscribe(device.device_id)
    assert kind == events.STREAM_SUBSCRIBED, reply
    return Bedside(device, nurse, PumpClient(broker_url, device.device_id), screen)


def bedside_close(bedside: Bedside) -> None:
    bedside.screen.close()
    bedside.pump.close()
