"""An unreadable alarm repeated by the pump, the same alarm with only its `timestamp` (uptime) and `seq` moved on,
re-alerted at every repeat once acknowledged, and broke the ward's silence at each one while it sounded (review 25,
finding 7).

Review 24 finding 3 told an unreadable alarm's repeat from the active one by a digest of the WHOLE payload
(`alarm_rules._excerpt_differs`). Every pump message carries its envelope (`timestamp`: uptime; `seq`): two sends of
one and the same alarm never had the same digest. A firmware that repeats its active alarm (a low battery every 30 s)
in a form refused whole (here a sensor reading NaN, the case of review 24's own test) could not be acknowledged: each
repeat turned it unacknowledged again with another alert, sound and escalation, saying "news" that was none. Now the
digest masks the envelope's values (`refusals.ENVELOPE_VALUE`); a repeat whose other bytes differ still alerts again
(the second test, and `integration/bridge/test_unreadable_alarm_repeat.py`).
"""

import pytest

from devices.models import Alarm
from devices.services.alarms import alarm_acknowledge
from devices.states import AlarmState
from tests.factories import make_device, make_user
from tests.support.ingest import send_bytes

pytestmark = pytest.mark.django_db


def refused_battery(uptime_ms: int, seq: int) -> bytes:
    """The same low battery alarm each time, refused whole for a NaN reading; only its envelope moves on."""
    envelope = f'"deviceId": "R25_REPEAT", "bootId": "b1", "seq": {seq}, "timestamp": {uptime_ms}'
    alarm = '"reading": NaN, "type": "battery_low", "severity": "low", "message": "Battery low"'
    return f"{{{envelope}, {alarm}}}".encode()


def sent(capture, body: bytes, at_s: float) -> Alarm:
    """The pump's alarm as sent, applied as the bridge does: its active alarm after it."""
    send_bytes(capture, "R25_REPEAT", "error", body, at_s)
    return Alarm.objects.get(device__device_id="R25_REPEAT", state=AlarmState.ACTIVE)


def test_the_same_unreadable_alarm_repeated_with_its_uptime_does_not_re_alert_after_acknowledgement(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device("R25_REPEAT")
    nurse = make_user("r25-repeat-nurse")

    first = sent(capture, refused_battery(60_000, 7), 0)
    assert first.type == "unreadable_alarm", f"precondition: a NaN reading raised {first.type}"
    alarm_acknowledge(alarm_id=first.pk, user=nurse, alerts=first.alerts)  # she read the low battery at the pump
    alerts = [first.alerts]
    for repeat in range(1, 4):
        again = sent(capture, refused_battery(60_000 + 30_000 * repeat, 7 + repeat), 30 * repeat)
        alerts.append(again.alerts)
        if again.acknowledged_at is None:
            alarm_acknowledge(alarm_id=again.pk, user=nurse, alerts=again.alerts)  # and again, and again
    assert alerts[-1] == first.alerts, (
        f"the pump repeated the one low battery alarm it had sent (only timestamp and seq moved on), yet each repeat "
        f"re-alerted the acknowledged unreadable_alarm: alerts {alerts}"
    )


def test_an_unreadable_alarm_whose_reading_differs_still_re_alerts_after_acknowledgement(
    django_capture_on_commit_callbacks,
):
    """Masking the envelope hides nothing else: the same refused alarm with another message is news."""
    capture = django_capture_on_commit_callbacks
    make_device("R25_REPEAT")

    first = sent(capture, refused_battery(60_000, 7), 0)
    alarm_acknowledge(alarm_id=first.pk, user=make_user("r25-repeat-nurse"), alerts=first.alerts)
    occluded = (
        refused_battery(90_000, 8).replace(b'"battery_low"', b'"occlusion"').replace(b"Battery low", b"Occlusion")
    )
    again = sent(capture, occluded, 30)
    assert again.acknowledged_at is None and again.alerts == first.alerts + 1, (
        f"a refused occlusion after an acknowledged refused low battery did not alert again (alerts {again.alerts})"
    )
