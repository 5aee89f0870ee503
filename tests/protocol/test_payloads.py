"""The typed Socket.IO payloads: every event has a model, each round-trips through the wire, and a model refuses
an unknown field or a wrong type where it is built (no Django: `protocol/` stands alone)."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from protocol import events
from protocol import payload_codec as codec
from protocol import payloads as wire
from protocol import ward_payloads as ward_wire

AT = datetime(2026, 12, 3, 4, 9, 10, 123456, tzinfo=UTC)
ESCALATION = wire.Escalation(level=1, at=AT)
TOP_ALARM = ward_wire.TopAlarm(id=7, type="Occlusion", key="occlusion", priority="high", message="blocked",
                               acknowledged=False, raisedAt=AT, lastRaisedAt=AT, alerts=1, escalation=None)  # fmt: skip


def alarm() -> wire.Alarm:
    return wire.Alarm(id=7, type="Occlusion", key="occlusion", errorCode="E12", priority="high", state="active",
                      acknowledged=wire.ByAt(by="nurse", at=AT), resolved=None, message="Occlusion downstream",
                      raisedAt=AT, lastRaisedAt=AT, alertedAt=AT, alerts=2, clearedAt=None, count=3, source="device",
                      infusionId="inf-1", escalation=ESCALATION)  # fmt: skip


def order() -> wire.Order:
    return wire.Order(flowRateMlMin=2.5, plannedVolumeMl=500, plannedTimeMin=200.0,
                      bolus=wire.Bolus(enabled=False, volumeMl=0), drug="Saline")  # fmt: skip


EXAMPLES: dict[str, wire.Payload] = {
    events.DEVICE_STATUS: wire.StatusEvent(
        status=wire.PumpStatus(
            status="running",
            reportedStatus="running",
            connectivity="online",
            pumpState="running",
            lastSeenAt=AT,
            batteryLevel=85,
            firmwareVersion="2.1",
            hasPresence=True,
            heartbeatTimeoutS=10,
            ward="icu",
        )  # fmt: skip
    ),
    events.DEVICE_PROGRESS: wire.ProgressEvent(
        progress=wire.Progress(
            timestamp=12000,
            deliveredVolumeMl=1.5,
            progressPercent=0.3,
            flowRate=2,
            status="running",
            vendorField={"x": 1},
            infusionId="inf-1",
            receivedAt=AT,
        )  # fmt: skip
    ),
    events.DEVICE_ERROR: wire.ErrorEvent(
        error=wire.AlarmError(
            type="Occlusion",
            key="occlusion",
            severity="critical",
            message="blocked",
            details={"line": "downstream"},
            errorId=7,
            errorCode=None,
            timestamp="0:01:02.5",
        )  # fmt: skip
    ),
    events.DEVICE_NOTIFICATION: wire.NotificationEvent(
        notification=wire.Notification(
            id="alarm-7-2",
            type="error",
            priority="critical",
            title="Occlusion",
            message="blocked",
            timestamp=AT,
            data=wire.NotificationData(
                alarmId=7, type="Occlusion", key="occlusion", errorCode=None, infusionId=None, alerts=2
            ),  # fmt: skip
            showModal=True,
        )
    ),
    events.DEVICE_INFUSION_CONFIRMED: wire.ConfirmationEvent(
        confirmation=wire.Confirmation(
            confirmedAt="2026-12-03T04:00:00Z", infusionId="inf-1", confirmed=True, parameters={"flowRateMlMin": 2.5}
        )  # fmt: skip
    ),
    events.DEVICE_INFUSION_COMPLETED: wire.CompletionEvent(
        completion=wire.Completion(summary={"totalVolumeMl": 500}, infusionId="inf-1", completed=True)
    ),
    events.DEVICE_ALARM: wire.AlarmEvent(alarm=alarm(), escalated=wire.Escalated(tier=1, group="charge")),
    events.DEVICE_SESSION: wire.SessionEvent(
        session=wire.Session(
            infusionId="inf-1",
            status="running",
            order=order(),
            reason=None,
            createdAt=AT,
            deliveredAt=AT,
            confirmedAt=None,
            endedAt=None,
            reportedParameters=None,
            readBack="match",
            patient=None,
            patientBed=None,
            runningEvidence=None,
        )  # fmt: skip
    ),
    events.DEVICE_COMMAND: wire.CommandEvent(
        command=wire.Command(
            commandId="c0ffee",
            command="STOP_INFUSION",
            state="queued",
            by="nurse",
            infusionId="inf-1",
            error=None,
            createdAt=AT,
            expiresAt=AT + timedelta(seconds=30),
            endedAt=None,
            pumpConnectivity="online",
            sentAt=None,
            publishedAt=AT + timedelta(seconds=1),  # handed to the broker, its PUBACK not yet recorded
        )  # fmt: skip
    ),
    events.DEVICE_REMOVED: wire.RemovedEvent(
        removed=wire.Removed(at=AT, by="admin", reason="deleted by an administrator")
    ),
    events.WARD_SUMMARY: ward_wire.WardSummary(
        ward="icu",
        pumps=[
            ward_wire.WardPump(
                deviceId="PUMP_1",
                seq=12,
                connectivity="online",
                lastSeenAt=AT,
                hasPresence=False,
                pumpState="running",
                drug="Saline",
                infusionId="inf-1",
                sessionStatus="running",
                unordered=False,
                rateMlH=150.0,
                progressPercent=0.3,
                timeRemainingMin=190,
                deliveredVolumeMl=1.5,
                volumeRemainingMl=498.5,
                topAlarm=TOP_ALARM,
                alarms=[TOP_ALARM],
            )
        ],
    ),  # fmt: skip
    events.WARD_SILENCE: ward_wire.WardSilence(
        ward="icu", until=AT, by="nurse", active=True, startedAt=AT, remainingS=59.5, reason="round", priority=None
    ),  # fmt: skip
    events.WARD_ALARM: ward_wire.WardAlarm(ward="icu", deviceId="PUMP_1", seq=13, alarm=alarm(), feed="*"),
    events.ALARM_ESCALATED: ward_wire.WardAlarm(
        ward="icu", deviceId="PUMP_1", seq=14, alarm=alarm(), escalated=wire.Escalated(tier=2, group="charge_nurse")
    ),
    events.STREAM_SUBSCRIBED: ward_wire.StreamSubscribed(
        deviceId="PUMP_1", room="device:PUMP_1", seq=12, snapshotEvents=5
    ),
    events.ERROR: ward_wire.ErrorMessage(message="Not permitted", request="subscribe:device"),
}


def test_every_device_event_has_its_model():
    assert set(wire.DEVICE_EVENT_MODELS) == set(events.DEVICE_EVENTS), "a device:* event without a typed payload"
    for name, model in wire.DEVICE_EVENT_MODELS.items():
        assert type(EXAMPLES[name]) is model, name


def test_every_server_event_has_its_model():
    assert set(ward_wire.SERVER_EVENT_MODELS) == set(events.SERVER_EVENTS), "a server event without a typed payload"
    for name, model in ward_wire.SERVER_EVENT_MODELS.items():
        assert type(EXAMPLES[name]) is model, name


def test_a_ward_alarm_is_the_recorded_alarm_change_with_its_ward_and_only_the_fields_it_had():
    body = wire.payload_to_wire(wire.AlarmEvent(alarm=alarm()))
    change = events.DeviceChange(device_id="PUMP_1", seq=13, event=events.DEVICE_ALARM, body=body, ward_code="icu")
    ward_alarm = ward_wire.ward_alarm_of(change)
    assert wire.payload_to_wire(ward_alarm) == {"ward": "icu", "deviceId": "PUMP_1", "seq": 13, **body}
    fed = wire.payload_to_wire(ward_alarm.model_copy(update={"feed": "*"}))
    assert list(fed) == ["ward", "deviceId", "seq", "alarm", "feed"], "no `escalated` unless the change escalated"
    escalating = events.DeviceChange(device_id="PUMP_1", seq=14, event=events.DEVICE_ALARM, ward_code="icu",
                                     body={**body, "escalated": {"tier": 2, "group": None}})  # fmt: skip
    assert wire.payload_to_wire(ward_wire.ward_alarm_of(escalating))["escalated"] == {"tier": 2, "group": None}


def test_an_error_carries_only_where_it_applies():
    assert ward_wire.error_body("Invalid Device ID", request="subscribe:device") == {
        "message": "Invalid Device ID",
        "request": "subscribe:device",
    }
    with pytest.raises(ValidationError):
        ward_wire.error_body("Not permitted", room="device:PUMP_1")


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_each_event_round_trips_through_the_wire(name):
    payload = EXAMPLES[name]
    sent = payload_json = json.dumps(wire.payload_to_wire(payload))  # what a client receives, as bytes
    received = codec.payload_from_wire(type(payload), sent)
    assert received == payload, f"{name}: {payload_json} read back as {received!r}"
    assert json.dumps(wire.payload_to_wire(received)) == sent, f"{name}: not the same bytes the second time"


def test_the_wire_keeps_integers_times_and_optional_fields_as_clients_have_always_had_them():
    status = wire.payload_to_wire(EXAMPLES[events.DEVICE_STATUS])["status"]
    assert json.dumps(status["batteryLevel"]) == "85", "an integer must not become 85.0 on the wire"
    assert status["lastSeenAt"] == AT.isoformat() == "2026-12-03T04:09:10.123456+00:00"
    local = datetime(2026, 12, 3, 5, 9, 10, tzinfo=timezone(timedelta(hours=1)))
    assert wire.payload_to_wire(wire.ByAt(by=None, at=local))["at"] == "2026-12-03T04:09:10+00:00", "UTC on the wire"
    off = wire.payload_to_wire(ward_wire.WardSilence(ward="icu", until=None, by=None, active=False, ended=None))
    assert list(off) == ["ward", "until", "by", "active", "ended"], "an inactive silence has no start or time left"
    assert "escalated" not in wire.payload_to_wire(wire.AlarmEvent(alarm=alarm())), "only the escalating change has it"
    progress = wire.payload_to_wire(EXAMPLES[events.DEVICE_PROGRESS])["progress"]
    assert progress["vendorField"] == {"x": 1} and "volumeRemainingMl" not in progress, "a pump's own fields as sent"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_an_unknown_field_is_refused_where_the_model_is_built(name):
    payload = EXAMPLES[name]
    fields = {field: getattr(payload, field) for field in type(payload).model_fields}
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        type(payload)(**fields, surprise=1)


@pytest.mark.parametrize(
    ("model", "fields", "wrong"),
    [
        (wire.PumpStatus, {"batteryLevel": "85"}, "batteryLevel"),
        (wire.PumpStatus, {"pumpState": "exploded"}, "pumpState"),
        (wire.PumpStatus, {"lastSeenAt": AT.replace(tzinfo=None)}, "lastSeenAt"),  # naive: no UTC without a zone
        (wire.PumpStatus, {"lastSeenAt": "2026-12-03T04:09:10+00:00"}, "lastSeenAt"),  # a time, not its text
        (wire.Alarm, {"id": "7"}, "id"),
        (wire.Alarm, {"priority": "urgent"}, "priority"),
        (wire.Command, {"state": "lost"}, "state"),
        (wire.Command, {"publishedAt": "2026-12-03T04:09:11+00:00"}, "publishedAt"),  # a time, not its text
        (wire.Progress, {"infusionId": 12}, "infusionId"),
        (wire.Progress, {"deliveredVolumeMl": "1.5"}, "deliveredVolumeMl"),
        (wire.Progress, {"deliveredVolumeMl": float("nan")}, "deliveredVolumeMl"),
        (wire.Completion, {"completed": False}, "completed"),
    ],
)
def test_a_wrong_type_is_refused_where_the_model_is_built(model, fields, wrong):
    example = {
        wire.PumpStatus: EXAMPLES[events.DEVICE_STATUS].status,
        wire.Alarm: alarm(),
        wire.Command: EXAMPLES[events.DEVICE_COMMAND].command,
        wire.Progress: EXAMPLES[events.DEVICE_PROGRESS].progress,
        wire.Completion: EXAMPLES[events.DEVICE_INFUSION_COMPLETED].completion,
    }[model]
    valid = {**{field: getattr(example, field) for field in model.model_fields}, **(example.model_extra or {})}
    with pytest.raises(ValidationError) as refused:
        model(**{**valid, **fields})
    assert refused.value.errors()[0]["loc"][0] == wrong


def test_a_payload_is_frozen():
    with pytest.raises(ValidationError):
        EXAMPLES[events.DEVICE_STATUS].status.batteryLevel = 3


def test_a_device_event_carries_only_its_own_model():
    with pytest.raises(TypeError, match="device:alarm carries AlarmEvent, not StatusEvent"):
        wire.device_event_to_wire(events.DEVICE_ALARM, EXAMPLES[events.DEVICE_STATUS])
    with pytest.raises(TypeError):
        wire.device_event_to_wire(events.WARD_SUMMARY, EXAMPLES[events.WARD_SUMMARY])
    assert wire.device_event_to_wire(events.DEVICE_ALARM, EXAMPLES[events.DEVICE_ALARM])["alarm"]["id"] == 7
