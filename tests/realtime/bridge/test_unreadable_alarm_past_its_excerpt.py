"""Review 24, finding 3: an unreadable alarm that differs from the acknowledged one only beyond its first 300 bytes
was no news: it only counted on the acknowledged `unreadable_alarm`, nothing sounded (review 23 finding 1's very
case, moved 300 bytes further). Both are now told apart by a digest of the whole payload.

`alarm_rules._excerpt_differs` compares `details["excerpt"]`, which the bridge cuts to the payload's first 300 bytes
(`refusals.py`: `message.payload[:300]`). A firmware that writes its envelope and its device block first (ids, firmware,
the sensor's calibration: a few hundred bytes, the same in every alarm) and whose alarms are refused whole (here a
sensor reading NaN, refused by `safejson` as JSON that is not JSON) sends a low battery, which the nurse acknowledges
at the pump, then an occlusion: the two payloads share their first 300 bytes, so the occlusion is "the same bytes
again": its count grows on the acknowledged alarm, no alert, no sound, no escalation."""

import json

import pytest

from devices.models import Alarm
from devices.services.alarms import alarm_acknowledge
from devices.states import AlarmState
from tests.factories import make_device, make_user
from tests.support.ingest import send_bytes

pytestmark = pytest.mark.django_db

DEVICE_BLOCK = {
    "deviceId": "R24_LONG", "firmwareVersion": "4.12.7-build.20260311-release-candidate",
    "hardware": {"board": "INF-PUMP-MAINBOARD-REV-G", "serial": "SN-00000000000000000000000042",
                 "sensors": ["upstream_pressure", "downstream_pressure", "air_in_line", "door", "syringe_plunger"],
                 "calibration": "factory-2026-03-11T08:00:00Z-station-7-operator-1138"},
}  # fmt: skip


def refused_alarm(alarm_type: str, severity: str) -> bytes:
    """The firmware's alarm: its device block first, a sensor reading NaN (refused whole), then what it is."""
    head = json.dumps(DEVICE_BLOCK)[:-1]
    return f'{head}, "reading": NaN, "type": "{alarm_type}", "severity": "{severity}"}}'.encode()


def test_an_occlusion_differing_from_an_acknowledged_unreadable_alarm_only_after_300_bytes_alerts(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device("R24_LONG")
    nurse = make_user("r24-nurse")
    battery, occlusion = refused_alarm("battery_low", "low"), refused_alarm("occlusion_detected", "high")
    assert battery[:300] == occlusion[:300] and battery != occlusion, "precondition: they differ after 300 bytes"

    def junk(body: bytes, at_s: float) -> Alarm:
        send_bytes(capture, "R24_LONG", "error", body, at_s)
        return Alarm.objects.get(device__device_id="R24_LONG", state=AlarmState.ACTIVE)

    first = junk(battery, 0)
    assert first.type == "unreadable_alarm", f"precondition: a NaN reading raised {first.type}"
    alarm_acknowledge(alarm_id=first.pk, user=nurse, alerts=first.alerts)  # she read the battery at the pump
    other = junk(occlusion, 1)
    assert other.acknowledged_at is None and other.alerts == first.alerts + 1, (
        "another unreadable alarm (an occlusion, by its bytes after the first 300) only counted on the acknowledged "
        f"unreadable_alarm: count {other.count}, alerts {other.alerts}, acknowledged {other.acknowledged_at}"
    )
