"""The monitor's event log speaks a clinician's language: who did what, and no transport chatter."""

import pytest
from django.utils import timezone

from devices.models import DeviceEvent
from devices.selectors import events_recent
from devices.services.sessions import infusion_start
from devices.views.event_log import event_text
from devices.views.presenters import event_entries, event_entry
from protocol.visible_text import BIDI_CONTROLS
from tests.factories import make_device, make_order, make_user, make_ward, signed_in

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


WIZARD = {
    "patient_name": "Ada Lovelace", "patient_age": "36", "patient_weight_kg": "60.5", "patient_bed": "4",
    "drug": "Heparin\u202e", "patient_allergies": "none", "rate_ml_h": "120", "volume_ml": "30",
    "bolus_enabled": "on", "bolus_volume_ml": "5", "confirm": "start",
}  # fmt: skip


def test_the_start_is_logged_with_the_drug_as_stored_without_its_direction_override():
    """Review 39, finding 1: the order's drug is stored without direction controls (e48a60a), but the log line
    "nurse started <drug> at 120 mL/h, 30 mL" was written from the drug as typed: an open U+202E turned the rate and
    volume after it around on the nurse's log."""
    ward = make_ward("icu")
    make_device("PUMP_BIDI", ward=ward, last_seen_at=timezone.now(), max_rate_ml_min=10, max_volume_ml=500)
    client = signed_in(make_user("nurse", ward=ward))
    token = client.cookies["csrftoken"].value
    started = client.post("/api/devices/PUMP_BIDI/infusions/", WIZARD, HTTP_X_CSRFTOKEN=token)
    assert started.status_code in (200, 201), started.content
    assert started.json()["session"]["order"]["drug"] == "Heparin", "the stored drug keeps its override (e48a60a)"
    events = client.get("/api/devices/PUMP_BIDI/events/").json()["events"]
    start = next(event for event in events if event["kind"] == "user.infusion_start")
    left_open = sorted(f"U+{ord(c):04X}" for c in start["text"] if c in BIDI_CONTROLS)
    assert not left_open, (
        f"the monitor's log line {start['text']!r} keeps {left_open}: the rate and volume after the drug read reversed"
    )
    assert start["text"] == "nurse started Heparin at 120.0 mL/h, 30 mL"


def test_the_pumps_last_will_handed_twice_reads_once_going_offline():
    """After the bridge was away the broker hands it a pump's Last Will twice (the copy queued for its session, then
    the retained one of its subscription): the log read "The pump went offline" twice at the same second."""
    pump = make_device("P_TWICE")
    for status in ("online", "offline", "offline", "running", "offline"):
        DeviceEvent.objects.create(device=pump, kind="mqtt.status", payload={"deviceId": "P_TWICE", "status": status})
    texts = [entry["text"] for entry in event_entries(events_recent(pump))]
    assert texts == ["The pump went offline", None, None, "The pump went offline", None], texts
