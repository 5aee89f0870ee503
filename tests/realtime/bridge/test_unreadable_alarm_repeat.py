"""A second, different alarm refused for the same odd field must alert: an alarm is never lost for its form (review 23,
finding 1).

An `error` refused by the schema for a field that says nothing of the alarm (a negative `seq`: a 16-bit counter
wrapped, an empty `bootId` before the pump has one, a `timestamp` object) raised the generic high `unreadable_alarm`.
A firmware that sends that field oddly sends it so on every alarm. Once the nurse acknowledged the first one (a low
battery, read at the pump), every later alarm of that pump, an occlusion included, was only a repeat of the active
`unreadable_alarm`: its count grew, nothing alerted, nothing sounded, the text stayed the first one's, until the
reminder 5 minutes later said the same generic text again. Now such an alarm is read without the refused field and
raised as itself (`protocol/salvage.py`), and an `unreadable_alarm`/`unreadable_report` repeated with other bytes
(or saying something else) alerts again once acknowledged.
"""

import pytest

from devices.models import Alarm, DeadLetter
from devices.services.alarms import alarm_acknowledge
from devices.states import AlarmState
from tests.factories import make_device, make_user
from tests.support.ingest import send, send_bytes

pytestmark = pytest.mark.django_db

ODD_FIELDS = {
    "negative-seq": {"seq": -1, "bootId": "b1"},
    "empty-bootId": {"bootId": ""},
    "timestamp-object": {"timestamp": {"ms": 105120}},
}


def alerting(device_id: str) -> list[tuple[str, str, int, str]]:
    """The pump's active alarms that nobody acknowledged since they last alerted: (type, priority, count, message)."""
    return list(
        Alarm.objects.filter(
            device__device_id=device_id, state=AlarmState.ACTIVE, acknowledged_at__isnull=True
        ).values_list("type", "priority", "count", "message")
    )


@pytest.mark.parametrize("odd", list(ODD_FIELDS), ids=list(ODD_FIELDS))
def test_an_occlusion_after_an_acknowledged_alarm_refused_for_an_odd_field_alerts(
    django_capture_on_commit_callbacks, odd
):
    capture = django_capture_on_commit_callbacks
    make_device("R23_ODD")
    nurse = make_user("r23-nurse")
    first = {"type": "battery_low", "severity": "low", "message": "Battery 15 %", **ODD_FIELDS[odd]}
    send(capture, "R23_ODD", "error", first)
    battery = Alarm.objects.get(device__device_id="R23_ODD", state=AlarmState.ACTIVE)
    assert (battery.type, battery.priority) == ("battery_low", "low"), (
        f"an alarm refused only for its {odd} was raised as {battery.type} ({battery.priority}), not as itself"
    )
    assert DeadLetter.objects.filter(source="R23_ODD", detail__startswith="applied without").exists(), (
        "the alarm read without its odd field is dead-lettered all the same, so the firmware's fault is seen"
    )
    alarm_acknowledge(alarm_id=battery.pk, user=nurse, alerts=battery.alerts)  # she read the battery at the pump

    second = {"type": "occlusion_detected", "severity": "high", "message": "Downstream occlusion: infusion stopped",
              **ODD_FIELDS[odd], **({"seq": -2} if "seq" in ODD_FIELDS[odd] else {})}  # fmt: skip
    send(capture, "R23_ODD", "error", second, 1)

    assert [(kind, priority) for kind, priority, *_ in alerting("R23_ODD")] == [("occlusion_detected", "high")], (
        "a pump's occlusion alarm, refused for the same odd field as its earlier (acknowledged) battery alarm, alerted "
        "nobody as itself: "
        f"{list(Alarm.objects.filter(device__device_id='R23_ODD').values_list('type', 'count', 'acknowledged_at'))}"
    )


def test_an_alarm_whose_type_is_an_object_is_unreadable_at_high(django_capture_on_commit_callbacks):
    """Read without its `type`, it would be a `device_error` at its own (low) severity: when in doubt, alarm high."""
    make_device("R23_TYPE")
    send(django_capture_on_commit_callbacks, "R23_TYPE", "error", {"type": {"code": 7}, "severity": "low"})
    active = list(Alarm.objects.filter(device__device_id="R23_TYPE").values_list("type", "priority"))
    assert active == [("unreadable_alarm", "high")], f"an alarm typed by an object raised {active}"


def test_another_unreadable_alarm_alerts_once_the_first_was_acknowledged(django_capture_on_commit_callbacks):
    """An alarm that cannot be read at all (not JSON) may say anything: another one (other bytes) after the first was
    acknowledged alerts again; the same bytes again only count."""

    capture = django_capture_on_commit_callbacks
    make_device("R23_JUNK")
    nurse = make_user("r23-nurse")

    def junk(body: bytes, at_s: float):
        send_bytes(capture, "R23_JUNK", "error", body, at_s)
        return Alarm.objects.get(device__device_id="R23_JUNK", state=AlarmState.ACTIVE)

    first = junk(b'{"type": "battery_low", "severity": "low",', 0)
    assert first.type == "unreadable_alarm", f"precondition: not JSON raised {first.type}"
    alarm_acknowledge(alarm_id=first.pk, user=nurse, alerts=first.alerts)
    again = junk(b'{"type": "battery_low", "severity": "low",', 1)
    assert again.acknowledged_at is not None and again.count == 2, (
        f"the same unreadable bytes again re-alerted the acknowledged alarm (alerts {again.alerts})"
    )
    other = junk(b'{"type": "occlusion_detected", "severity": "high",', 2)
    assert other.acknowledged_at is None and other.alerts == first.alerts + 1, (
        "another unreadable alarm (an occlusion, by its bytes) only counted on the acknowledged unreadable_alarm: "
        f"alerts {other.alerts}, acknowledged {other.acknowledged_at}"
    )


def test_a_stop_after_an_acknowledged_unreadable_pause_alerts(django_capture_on_commit_callbacks):
    """The same for `unreadable_report`: a firmware that names its infusion as a number has every action refused
    whole. The nurse acknowledged "a Pause at its own screen" (she saw the pump paused); its Stop then only counts on
    that alarm (its text silently changed to "a Stop"), nothing alerts: the screen shows the infusion paused."""
    from tests.support.ingest import confirmed_order

    capture = django_capture_on_commit_callbacks
    make_device("R23_ACT")
    nurse = make_user("r23-nurse")
    confirmed_order("R23_ACT")
    send(capture, "R23_ACT", "actions", {"action": "MANUAL_PAUSE", "infusionId": 4711, "source": "device_screen"})
    for alarm in Alarm.objects.filter(device__device_id="R23_ACT", state=AlarmState.ACTIVE):
        alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)  # she looked at the pump: paused
    assert Alarm.objects.filter(device__device_id="R23_ACT", type="unreadable_report").exists(), "precondition"

    send(capture, "R23_ACT", "actions", {"action": "MANUAL_STOP", "infusionId": 4711, "source": "device_screen"}, 1)

    assert alerting("R23_ACT"), (
        "the pump's Stop, refused for the same odd infusionId as its acknowledged Pause, alerted nobody: "
        f"{list(Alarm.objects.filter(device__device_id='R23_ACT').values_list('type', 'count', 'message'))}"
    )


def test_a_shed_alarm_refused_for_an_odd_field_is_named_as_it_would_be_raised():
    """`alarm_flood` names a shed alarm as it would have been raised: one refused for its envelope alone as itself (a
    numeric type the raw reader misses is decoded), one whose type is an object as `unreadable_alarm` at high."""
    from realtime.bridge.budgets import ShedSummary
    from realtime.bridge.ingest import InboundMessage

    summary = ShedSummary()
    for body in (b'{"seq": -1, "type": 5, "severity": "low"}', b'{"seq": -1, "type": {"a": 1}, "severity": "low"}'):
        summary.add_message(InboundMessage(topic="devices/R23_SHED/error", payload=body))
    assert summary.types["R23_SHED"] == {"5": "low", "unreadable_alarm": "high"}, summary.types


def test_an_unreadable_status_heartbeat_repeated_does_not_re_alert(django_capture_on_commit_callbacks):
    """A status is the pump's heartbeat, its bytes differ at each one (uptime): the same unreadable word again is no
    news, or an acknowledged `unreadable_report` would sound at every heartbeat; another word it can tell is."""
    from tests.support.ingest import confirmed_order

    capture = django_capture_on_commit_callbacks
    make_device("R23_BEAT")
    nurse = make_user("r23-nurse")
    session = confirmed_order("R23_BEAT")
    send(capture, "R23_BEAT", "status", {"status": "RUNNING_X", "infusionId": session.infusion_id, "uptime": 1000})
    report_alarm = Alarm.objects.get(device__device_id="R23_BEAT", type="unreadable_report", state=AlarmState.ACTIVE)
    alarm_acknowledge(alarm_id=report_alarm.pk, user=nurse, alerts=report_alarm.alerts)
    send(capture, "R23_BEAT", "status", {"status": "RUNNING_X", "infusionId": session.infusion_id, "uptime": 6000}, 5)
    report_alarm.refresh_from_db()
    assert report_alarm.acknowledged_at is not None and report_alarm.count == 2, (
        f"an unreadable heartbeat repeated re-alerted the acknowledged unreadable_report (alerts {report_alarm.alerts})"
    )
