"""Presence never clears `device_degraded`: connected is not well (review 19).

`_status` cleared `device_degraded` on every status but `testing`, `degraded` and `issue`, presence included: a pump
that reported `degraded` (its battery failing) and then died of it had its alarm cleared by its own Last Will ("the
pump reports offline"), and a Wi-Fi blip's `online` on reconnecting cleared it while the pump was as degraded as before.
"""

import pytest

from devices.models import Alarm, DeviceEvent
from tests.factories import make_device
from tests.support.ingest import send

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("presence", ["online", "offline"])
def test_a_presence_status_does_not_clear_device_degraded(django_capture_on_commit_callbacks, presence):
    capture = django_capture_on_commit_callbacks
    make_device("DEGR", has_presence=True)
    send(capture, "DEGR", "status", {"deviceId": "DEGR", "status": "online", "batteryLevel": 12, "seq": 1,
                                     "bootId": "b1"})  # fmt: skip
    send(capture, "DEGR", "status", {"deviceId": "DEGR", "status": "degraded", "batteryLevel": 4, "seq": 2,
                                     "bootId": "b1"}, 1)  # fmt: skip
    alarm = Alarm.objects.get(type="device_degraded")
    presence_body = {"deviceId": "DEGR", "status": presence, "bootId": "b1"}  # the Last Will: no seq
    if presence == "online":
        presence_body.update(batteryLevel=4, seq=3)  # its `online` on reconnecting
    send(capture, "DEGR", "status", presence_body, 2)
    alarm.refresh_from_db()
    why = list(DeviceEvent.objects.filter(kind="alarm.cleared").values_list("payload__reason", flat=True))
    assert alarm.state == "active", (
        f"the pump reported degraded (battery 4 %), then only its presence ({presence}): device_degraded {alarm.state} "
        f"({why})"
    )


def test_a_health_status_after_degraded_still_clears_it(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("DEGR", has_presence=True)
    send(capture, "DEGR", "status", {"deviceId": "DEGR", "status": "degraded", "batteryLevel": 4, "seq": 1,
                                     "bootId": "b1"})  # fmt: skip
    send(capture, "DEGR", "status", {"deviceId": "DEGR", "status": "healthy", "batteryLevel": 90, "seq": 2,
                                     "bootId": "b1"}, 1)  # fmt: skip
    assert Alarm.objects.get(type="device_degraded").state == "cleared"
