"""Alarm keys and re-alerting (contract v1.1 "Alarms") through the real broker, bridge and Daphne.

A repeat of an active alarm only counts; it alerts again (unacknowledged, a new `device:notification`)
when raised after clearing, in a new session, at a higher priority, or still active past the reminder
interval after acknowledgement. This module's bridge runs with reminders of 3 s (high) and 4 s (medium).
"""

import time

import pytest

from devices.models import Alarm, DeviceEvent, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import SessionStatus
from tests.clinical.alarm_support import READ_BACK, bedside_close, bedside_open
from tests.factories import make_order
from tests.support.bridge import BridgeProcess, wait_until
from tests.support.sio import BrowserSession

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
REMINDER_HIGH_S, REMINDER_MEDIUM_S = 3, 4


@pytest.fixture(scope="module")
def reminder_bridge(clinical_broker, daphne_server, django_db_blocker, artifacts_dir):
    """The real bridge with short reminder intervals (the only bridge on this module's broker)."""
    with django_db_blocker.unblock():
        process = BridgeProcess(clinical_broker.url, daphne_server.internal_url, artifacts_dir,
                                ALARM_REMINDER_HIGH_S=str(REMINDER_HIGH_S),
                                ALARM_REMINDER_MEDIUM_S=str(REMINDER_MEDIUM_S)).start()  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def bedside(clinical_broker, reminder_bridge, daphne_server):
    opened = bedside_open(clinical_broker.url, daphne_server.url, prefix="KEY")
    opened.browser = BrowserSession(daphne_server.url, opened.nurse.username)
    yield opened
    bedside_close(opened)


def acknowledge(bedside, alarm_id: int) -> None:
    """The nurse presses Acknowledge (the real endpoint under Daphne, CSRF and session cookie)."""
    bedside.browser.post(f"/api/alarms/{alarm_id}/acknowledge/")
    bedside.alarm_event(lambda alarm: alarm["id"] == alarm_id and alarm["acknowledged"])


def test_a_repeat_only_counts_and_a_raise_after_clearing_is_a_new_alarm_that_alerts(bedside):
    bedside.pump.publish("error", {"type": "Occlusion", "severity": "high"})
    bedside.pump.publish("error", {"type": "Occlusion", "severity": "high"})
    counted = bedside.alarm_event(lambda alarm: alarm["count"] == 2)
    assert len(bedside.notifications()) == 1, "a repeat of an active alarm must not alert again"
    bedside.pump.publish("error", {"type": "occlusion_cleared"})
    bedside.alarm_event(lambda alarm: alarm["id"] == counted["id"] and alarm["state"] == "cleared")
    mark = bedside.mark()
    bedside.pump.publish("error", {"type": "Occlusion", "severity": "high"})
    again = bedside.alarm_event(lambda alarm: alarm["state"] == "active", start=mark)
    assert again["id"] != counted["id"] and again["count"] == 1 and not again["acknowledged"]
    assert bedside.notification_for(again["id"], start=mark)["showModal"]


def test_a_repeat_at_higher_priority_alerts_again_unacknowledged(bedside):
    bedside.pump.publish("error", {"type": "door_open", "severity": "low"})
    first = bedside.alarm_event(lambda alarm: alarm["priority"] == "low")
    acknowledge(bedside, first["id"])
    mark = bedside.mark()
    bedside.pump.publish("error", {"type": "door_open", "severity": "critical"})
    louder = bedside.alarm_event(lambda alarm: alarm["priority"] == "high", start=mark)
    assert louder["id"] == first["id"] and louder["acknowledged"] is None and louder["alerts"] == 2
    assert bedside.notification_for(first["id"], start=mark)["id"].endswith("-2")


def test_the_same_alarm_in_a_new_session_is_a_new_alarm_tied_to_it(bedside):
    sessions = []
    for _ in range(2):
        session = infusion_start(device_id=bedside.device_id, order=make_order())
        bedside.start_command(session.infusion_id)
        bedside.pump.publish(
            "infusion", {"infusionId": session.infusion_id, "confirmed": True, "parameters": READ_BACK}
        )
        mark = bedside.mark()
        bedside.pump.publish("error", {"type": "air_in_line", "errorCode": "E12"})
        alarm = bedside.alarm_event(lambda alarm: alarm["type"] == "air_in_line", start=mark)
        assert alarm["infusionId"] == session.infusion_id, "the alarm must be tied to the session it was raised in"
        assert alarm["count"] == 1 and bedside.notification_for(alarm["id"], start=mark)
        sessions.append((session, alarm))
        bedside.pump.publish("status", {"status": "stopped"})
        wait_until(lambda session=session: InfusionSession.objects.get(pk=session.pk).status == SessionStatus.STOPPED,
                   message="the infusion did not stop")  # fmt: skip
    (_, first), (_, second) = sessions
    assert first["id"] != second["id"], "a new session must get a new alarm, not a count on the old one"


def test_an_acknowledged_alarm_still_active_past_the_reminder_alerts_again(bedside):
    bedside.pump.publish("error", {"type": "battery_low", "severity": "medium"})
    alarm = bedside.alarm_event(lambda alarm: alarm["key"] == "battery_low")
    acknowledged_at = time.monotonic()  # before the cause: its event's delivery time cannot shorten what is measured
    acknowledge(bedside, alarm["id"])
    mark = bedside.mark()
    reminded = bedside.alarm_event(lambda a: a["id"] == alarm["id"] and a["acknowledged"] is None, start=mark,
                                   timeout=REMINDER_MEDIUM_S + 10)  # fmt: skip
    waited = time.monotonic() - acknowledged_at
    assert waited >= REMINDER_MEDIUM_S, f"reminded after {waited:.1f} s, before the medium interval"
    assert reminded["alerts"] == 2 and bedside.notification_for(alarm["id"], start=mark)["priority"] == "warning"
    assert DeviceEvent.objects.filter(device=bedside.device, kind="alarm.reminded").exists()
    assert Alarm.objects.get(pk=alarm["id"]).acknowledged_at is None
