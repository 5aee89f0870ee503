r"""The unreadable-alarm digest masked the envelope's values with `[^,}\]\s]*` for an unquoted value, which also ate
`"` and `:` (review 26, finding 3). A refused payload is often refused BECAUSE it is malformed: a compact firmware
payload missing the comma after its `timestamp` had the whole next key and value masked with it. Two different alarms
(an air-in-line then an occlusion) then digested alike, and the occlusion was taken for a repeat of the acknowledged
air-in-line: no alert, no sound, no escalation. Now only a JSON string or a bare word is masked
(`refusals.ENVELOPE_VALUE`)."""

import pytest

from devices.models import Alarm
from devices.services.alarms import alarm_acknowledge
from devices.states import AlarmState
from realtime.bridge.refusals import payload_digest
from tests.factories import make_device, make_user
from tests.support.ingest import send_bytes

pytestmark = pytest.mark.django_db
DEVICE = "R26_MASK"


def refused(alarm_type: str, uptime_ms: int, seq: int) -> bytes:
    """A compact payload missing the comma after `timestamp` (why it is refused); only the alarm's type differs."""
    return (f'{{"deviceId":"{DEVICE}","bootId":"b1","seq":{seq},"timestamp":{uptime_ms}"type":"{alarm_type}",'
            f'"severity":"high"}}').encode()  # fmt: skip


def test_two_different_refused_alarms_do_not_digest_alike():
    assert payload_digest(refused("air_in_line", 60_000, 7)) != payload_digest(refused("occlusion", 90_000, 8)), (
        "an air-in-line and an occlusion refused alike (comma missing after timestamp) have one digest: the mask "
        "swallowed the alarm's type with the timestamp"
    )


def test_a_refused_occlusion_after_an_acknowledged_refused_air_in_line_alerts_again(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device(DEVICE)
    send_bytes(capture, DEVICE, "error", refused("air_in_line", 60_000, 7), 0)
    first = Alarm.objects.get(device__device_id=DEVICE, state=AlarmState.ACTIVE)
    assert first.type == "unreadable_alarm", f"precondition: refused, raised {first.type}"
    alarm_acknowledge(alarm_id=first.pk, user=make_user("r26-mask-nurse"), alerts=first.alerts)
    send_bytes(capture, DEVICE, "error", refused("occlusion", 90_000, 8), 30)
    again = Alarm.objects.get(device__device_id=DEVICE, state=AlarmState.ACTIVE)
    assert again.acknowledged_at is None and again.alerts == first.alerts + 1, (
        f"a refused OCCLUSION after an acknowledged refused air-in-line stayed acknowledged and silent "
        f"(alerts {first.alerts} -> {again.alerts}, acknowledged {again.acknowledged_at})"
    )
