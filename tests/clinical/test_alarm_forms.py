"""No alarm is lost for its form (contract v1.1 "On error"): every odd `devices/{id}/error` payload reaches the nurse.

Real Mosquitto, real bridge, real Daphne, a real Socket.IO client as the nurse's screen. Readable forms raise
the alarm as sent (type shown as sent, key derived); one refused only for its envelope (`seq`, `bootId`,
`timestamp`) is raised as sent and dead-lettered too (review 23); unreadable ones raise a high `unreadable_alarm` for
the pump and are dead-lettered too.
"""

import json

import pytest

from devices.models import Alarm, DeadLetter
from devices.states import AlarmState
from tests.clinical.alarm_support import bedside_close, bedside_open
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HUGE = "Occlusion " * 150  # 1,500 characters
READABLE = [
    pytest.param({"type": "Occlusion Detected (downstream)", "severity": "HIGH", "message": "Check the line"},
                 "Occlusion Detected (downstream)", "occlusion_detected__downstream_", "high", None, id="spaces"),
    pytest.param({"type": "Überdruck ⚠ Leitung", "severity": "Warnung", "message": "Druck zu hoch"},
                 "Überdruck ⚠ Leitung", "überdruck_⚠_leitung", "high", None, id="unicode-unknown-severity"),
    pytest.param({"type": "occlusion", "errorCode": "7", "severity": "warning"},
                 "occlusion", "occlusion", "medium", "7", id="code-as-string"),
    pytest.param({"type": 42, "errorCode": 7.5, "severity": 2}, "42", "42", "high", "7.5", id="numbers"),
    pytest.param({"type": HUGE, "message": "m" * 2000, "errorCode": "E" * 200, "severity": "critical"},
                 HUGE.strip()[:200], ("occlusion_" * 7)[:64], "high", "E" * 64, id="huge-text"),
    pytest.param({"type": "pressure_high", "severity": "low", "details": {"a": {"b": [1, {"c": {"d": "deep"}}]}}},
                 "pressure_high", "pressure_high", "low", None, id="nested-details"),
    pytest.param({}, "device_error", "device_error", "high", None, id="empty-object"),
    pytest.param({"type": "", "message": {"text": "an object as message"}, "details": "text"},
                 "device_error", "device_error", "high", None, id="empty-type-object-message"),
]  # fmt: skip
UNREADABLE = [
    pytest.param(b"OCCLUSION!! line blocked", "bad_json", id="not-json"),
    pytest.param(b'{"type": "occlusion", "message": "\xff\xfe broken"}', "bad_utf8", id="invalid-utf8"),
    pytest.param(b'[{"type": "occlusion", "severity": "high"}]', "not_object", id="json-array"),
    pytest.param(json.dumps({"type": "occlusion", "message": "x" * 20_000}).encode(), "too_large", id="too-large"),
    pytest.param(json.dumps({"type": {"nested": "object"}}).encode(), "schema", id="type-an-object"),
    pytest.param(json.dumps({"type": "occlusion", "deviceId": "SOMEONE_ELSE"}).encode(), "device_mismatch",
                 id="other-device-id"),
]  # fmt: skip


@pytest.fixture
def bedside(clinical_broker, clinical_bridge, daphne_server):
    opened = bedside_open(clinical_broker.url, daphne_server.url, prefix="FORM")
    yield opened
    bedside_close(opened)


@pytest.mark.parametrize(("payload", "shown", "key", "priority", "code"), READABLE)
def test_every_readable_alarm_form_reaches_the_nurse_as_sent(bedside, payload, shown, key, priority, code):
    bedside.pump.publish("error", payload)
    alarm = bedside.alarm_event(lambda alarm: alarm["state"] == "active")
    assert (alarm["type"], alarm["key"], alarm["priority"], alarm["errorCode"]) == (shown, key, priority, code), (
        f"the nurse saw {alarm['type']!r} (key {alarm['key']!r}, {alarm['priority']}, code {alarm['errorCode']!r})"
    )
    assert bedside.notification_for(alarm["id"])["title"], "no device:notification for the alarm"
    stored = Alarm.objects.get(pk=alarm["id"])
    assert stored.state == AlarmState.ACTIVE and stored.type == key
    assert not DeadLetter.objects.filter(source=bedside.device_id).exists(), "a readable alarm is not refused"


@pytest.mark.parametrize(("raw", "reason"), UNREADABLE)
def test_an_unreadable_alarm_still_alarms_high_and_is_dead_lettered(bedside, raw, reason):
    bedside.pump.publish("error", raw)
    alarm = bedside.alarm_event(lambda alarm: alarm["type"] == "unreadable_alarm")
    assert alarm["priority"] == "high" and alarm["state"] == "active" and alarm["source"] == "server"
    assert reason in alarm["message"], alarm["message"]
    assert bedside.notification_for(alarm["id"])["showModal"], "a high alarm's notification shows a modal"
    letter = wait_until(lambda: DeadLetter.objects.filter(source=bedside.device_id).first(),
                        message="the unreadable alarm was not dead-lettered")  # fmt: skip
    assert letter.reason == reason and letter.topic == f"devices/{bedside.device_id}/error"


def test_an_alarm_refused_for_its_timestamp_is_raised_as_sent_and_dead_lettered(bedside):
    """Review 23: raised as `unreadable_alarm`, every later alarm of a firmware sending its timestamp so only counted
    on the first one once acknowledged. Read without the timestamp, it is the occlusion it names."""
    bedside.pump.publish("error", {"type": "occlusion", "severity": "high", "timestamp": {"t": 1}})
    alarm = bedside.alarm_event(lambda alarm: alarm["state"] == "active")
    assert (alarm["type"], alarm["priority"], alarm["source"]) == ("occlusion", "high", "device"), alarm
    letter = wait_until(lambda: DeadLetter.objects.filter(source=bedside.device_id).first(),
                        message="the alarm read without its timestamp was not dead-lettered")  # fmt: skip
    assert letter.reason == "schema" and letter.detail.startswith("applied without timestamp"), letter.detail


def test_a_code_sent_as_number_then_as_string_is_one_alarm_counted_twice(bedside):
    bedside.pump.publish("error", {"type": "Occlusion", "errorCode": 7})
    bedside.pump.publish("error", {"type": "occlusion", "errorCode": "7"})
    alarm = bedside.alarm_event(lambda alarm: alarm["count"] == 2)
    assert alarm["key"] == "occlusion" and alarm["errorCode"] == "7"
    assert Alarm.objects.filter(device=bedside.device).count() == 1
    assert len(bedside.notifications()) == 1, "a repeat of an active alarm only counts"


def test_a_pump_nobody_registered_raises_nothing_and_is_dead_lettered(clinical_broker, clinical_bridge):
    from tests.support.bridge import PumpClient

    stranger = PumpClient(clinical_broker.url, "NOBODY_0001")
    try:
        stranger.publish("error", b"not json")
        wait_until(lambda: DeadLetter.objects.filter(source="NOBODY_0001", reason="bad_json").exists(),
                   message="an error from an unregistered pump was not dead-lettered")  # fmt: skip
    finally:
        stranger.close()
    assert not Alarm.objects.exists()
