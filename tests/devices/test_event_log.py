"""The monitor's event log speaks a clinician's language: who did what, and no transport chatter."""

import pytest
from django.utils import timezone

from devices.models import DeviceEvent
from devices.services.sessions import infusion_start
from devices.views.event_log import event_text
from devices.views.presenters import event_entry
from tests.factories import make_device, make_order, make_user, make_ward

pytestmark = pytest.mark.django_db


def event(kind: str, payload: dict, user=None) -> DeviceEvent:
    return DeviceEvent(device=make_device(f"P_{abs(hash(kind)) % 10**6}"), kind=kind, payload=payload, user=user)


@pytest.mark.parametrize(
    ("kind", "payload", "text"),
    [
        ("session.running", {"from": "pending", "to": "running", "reason": "confirmed"},
         "The pump confirmed: infusion running"),
        ("session.running", {"from": "paused", "to": "running"}, "Infusion resumed"),
        ("session.paused", {"from": "running", "to": "paused", "reason": "line check"}, "Infusion paused (line check)"),
        ("session.rejected", {"to": "rejected", "reason": "occlusion_suspected"},
         "The pump rejected the infusion (occlusion suspected)"),
        ("session.rejected", {"to": "rejected",
                              "reason": "refused by the pump: it is busy with an infusion of its own (pump_busy)"},
         "The pump refused the infusion: it is busy with an infusion of its own (pump_busy)"),
        ("pump.report_for_other_infusion", {"report": "rejected", "infusionId": None, "current": "inf_2",
                                            "why": "its START had not left the server when the pump sent this"},
         "The pump reported a Reject that is not about the order waiting: not applied (its START had not left the "
         "server when the pump sent this)"),
        ("pump.report_for_other_infusion", {"report": "rejected", "infusionId": None, "current": "inf_2",
                                            "mayBeCurrent": True,
                                            "why": "the pump had not reported receiving its START"},
         "The pump reported a Reject that may be an earlier order's: not applied (the pump had not reported receiving "
         "its START). Check at the pump"),
        ("alarm.raised.device", {"type": "occlusion", "priority": "high", "message": "Line blocked"},
         "High alarm raised: occlusion: Line blocked"),
        ("alarm.cleared", {"type": "air_in_line"}, "Alarm cleared: air in line"),
        ("command.failed", {"command": "STOP_INFUSION", "error": "pump busy"}, "The stop command failed: pump busy"),
        ("server.stop_withdrawn", {"reason": "the pump runs infusion inf_1 (confirmed after timed_out)"},
         "The stop that was to clear the pump's screen was withdrawn unsent: the pump runs the infusion"),
        ("server.stop_withdrawn", {"reason": "runs infusion inf_1 (confirmed after cancelled)"},
         "The stop that was to clear the pump's screen was withdrawn unsent: the pump runs the infusion"),
        ("server.stop_withdrawn", {"reason": "reports an infusion of its own, running"},
         "The stop that was to clear the pump's screen was withdrawn unsent: the pump reports infusing"),
    ],
)  # fmt: skip
def test_pump_and_server_events_read_as_sentences(kind, payload, text):
    assert event_text(event(kind, payload)) == text


@pytest.mark.parametrize(
    ("kind", "payload"),
    [("mqtt.status", {"status": "received_start_command"}), ("mqtt.test", {}), ("command.sent", {}),
     ("command.delivered", {"command": "START_INFUSION"}), ("mqtt.status", {"status": "online"}),
     ("pump.report_for_other_infusion", {"report": "completed", "infusionId": "inf_1", "current": "inf_2"})],
)  # fmt: skip
def test_transport_chatter_is_left_out_of_the_clinical_log(kind, payload):
    assert event_text(event(kind, payload)) is None


def test_who_did_what_is_named():
    ward = make_ward("log")
    nurse = make_user("sam", ward=ward)
    make_device("P_LOG", ward=ward, last_seen_at=timezone.now())
    infusion_start(device_id="P_LOG", order=make_order(drug="Heparin", bolus_enabled=False), user=nurse)
    entry = event_entry(DeviceEvent.objects.get(kind="user.infusion_start"))
    assert entry["text"] == "sam started Heparin at 120.0 mL/h, 30 mL", entry
    assert event_text(event("user.pause_infusion", {"reason": "line check"}, user=nurse)) == (
        "sam asked the pump to pause (line check)"
    )
    assert event_text(event("user.alarm_acknowledged", {"type": "occlusion"}, user=nurse)) == (
        "sam acknowledged the occlusion alarm"
    )
