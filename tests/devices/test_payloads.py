"""The event bodies the services record, built from rows as typed payloads: the wire keeps the contract's keys,
in the order clients have always received them (on SQLite; jsonb keeps no order), and a row value of the wrong
type is refused where it is built."""

import pytest
from django.db import connection, transaction
from django.utils import timezone
from pydantic import ValidationError

from devices import payloads
from devices.models import ChangeLogEntry
from devices.services.alarms import alarm_raise
from devices.services.changes import change_record, device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource
from protocol import events
from protocol.payload_codec import payload_from_wire, payload_to_wire
from protocol.payloads import DEVICE_EVENT_MODELS
from tests.factories import make_device, make_order, make_user, make_ward

pytestmark = pytest.mark.django_db

# The keys of each event's inner object, in the order the dict builders wrote them before the typed payloads.
WIRE_KEYS = {
    events.DEVICE_STATUS: ["status", "reportedStatus", "connectivity", "pumpState", "lastSeenAt", "batteryLevel",
                           "firmwareVersion", "hasPresence", "heartbeatTimeoutS", "ward", "bed"],
    events.DEVICE_SESSION: ["infusionId", "status", "order", "reason", "createdAt", "deliveredAt", "confirmedAt",
                            "endedAt", "reportedParameters", "readBack", "patient", "patientBed", "runningEvidence",
                            "unconfirmedSince", "progressMismatch", "deliveryDivergence",
                            "parametersUnreadable", "receivedFlowRateMlMin",
                            "deliveredBeforeRunMl", "answerInDoubt"],  # added after the contract's own, never removed
    events.DEVICE_COMMAND: ["commandId", "command", "state", "by", "infusionId", "error", "createdAt", "expiresAt",
                            "endedAt", "pumpConnectivity", "sentAt", "publishedAt", "handedAt", "askedAt"],
    events.DEVICE_ALARM: ["id", "type", "key", "errorCode", "priority", "state", "acknowledged", "resolved", "message",
                          "raisedAt", "lastRaisedAt", "alertedAt", "alerts", "clearedAt", "count", "source",
                          "infusionId", "escalation"],
    events.DEVICE_ERROR: ["type", "key", "severity", "message", "details", "errorId", "errorCode", "timestamp"],
    events.DEVICE_NOTIFICATION: ["id", "type", "priority", "title", "message", "timestamp", "data", "showModal"],
}  # fmt: skip
OUTER_KEY = {events.DEVICE_STATUS: "status", events.DEVICE_SESSION: "session", events.DEVICE_COMMAND: "command",
             events.DEVICE_ALARM: "alarm", events.DEVICE_ERROR: "error", events.DEVICE_NOTIFICATION: "notification",
             events.DEVICE_INFUSION_CONFIRMED: "confirmation"}  # fmt: skip


def as_stored(keys) -> list[str]:
    """Key order survives the change log on SQLite (JSON text); PostgreSQL's jsonb keeps no order (JSON
    objects are unordered, so no client may rely on it): there the keys are compared as a set."""
    return list(keys) if connection.vendor == "sqlite" else sorted(keys)


def recorded_bodies() -> dict[str, dict]:
    """A start, its confirmation and an alarm through the services; the last body the log holds per event."""
    device = make_device(ward=make_ward(), battery_level=85, reported_status="running", last_seen_at=timezone.now())
    session = infusion_start(device_id=device.device_id, order=make_order(), user=make_user())
    with transaction.atomic():
        locked = device_lock(device_id=device.device_id)
        infusion_confirm(device=locked, infusion_id=session.infusion_id, confirmed=True, now=timezone.now(),
                         parameters={"flowRateMlMin": session.flow_rate_ml_min}, confirmation={"confirmed": True,
                         "infusionId": session.infusion_id, "vendorNote": "kept"})  # fmt: skip
        alarm_raise(device=locked, type="Occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE,
                    message="blocked", details={"line": "downstream"}, device_timestamp=12000)  # fmt: skip
        change_record(device=locked, event=events.DEVICE_STATUS, body=payloads.status_body(locked))
    return {entry.event: entry.body for entry in ChangeLogEntry.objects.order_by("id")}


def test_recorded_bodies_keep_the_contracts_keys_in_their_order_and_read_back_as_their_models():
    bodies = recorded_bodies()
    for event, keys in WIRE_KEYS.items():
        assert list(bodies[event]) == [OUTER_KEY[event]], f"{event}: {list(bodies[event])}"
        assert as_stored(bodies[event][OUTER_KEY[event]]) == as_stored(keys), f"{event} changed its keys on the wire"
    for event, body in bodies.items():
        model = DEVICE_EVENT_MODELS[event]
        assert payload_to_wire(payload_from_wire(model, body)) == body, f"{event} does not round-trip"
    status = bodies[events.DEVICE_STATUS]["status"]
    assert status["batteryLevel"] == 85 and isinstance(status["batteryLevel"], int), status
    assert status["lastSeenAt"].endswith("+00:00"), status
    confirmation = bodies[events.DEVICE_INFUSION_CONFIRMED]["confirmation"]
    assert confirmation["vendorNote"] == "kept" and confirmation["confirmed"] is True, confirmation
    assert bodies[events.DEVICE_ERROR]["error"]["timestamp"] == 12000, "the pump's own timestamp, as sent"
    assert as_stored(bodies[events.DEVICE_SESSION]["session"]["order"]) == as_stored([
        "flowRateMlMin", "plannedVolumeMl", "plannedTimeMin", "bolus", "drug"
    ])  # fmt: skip


def test_a_row_value_of_the_wrong_type_is_refused_where_the_payload_is_built():
    device = make_device(battery_level=85)
    device.battery_level = "85%"  # never saved: the payload refuses it before any client could see it
    with pytest.raises(ValidationError, match="batteryLevel"):
        payloads.status_body(device)
    device.battery_level, device.pump_state, device.last_seen_at = 85, "exploded", timezone.now()  # heard: shown
    with pytest.raises(ValidationError, match="pumpState"):
        payloads.status_body(device)


def test_a_change_is_refused_unless_it_carries_its_events_model():
    device = make_device()
    with transaction.atomic():
        locked = device_lock(device_id=device.device_id)
        before = locked.event_seq
        with pytest.raises(TypeError, match="device:session carries SessionEvent, not StatusEvent"):
            change_record(device=locked, event=events.DEVICE_SESSION, body=payloads.status_body(locked))
        with pytest.raises(TypeError):
            change_record(device=locked, event=events.DEVICE_STATUS, body={"status": {"status": "running"}})
        assert locked.event_seq == before, "a refused change must not take the pump's next seq"
    assert not ChangeLogEntry.objects.exists(), "a refused change must not reach the log"
