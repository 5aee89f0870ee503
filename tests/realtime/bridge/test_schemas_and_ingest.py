"""Unit tests: payload schemas with the legacy coercions, message checks, the bound on what is stored of a
message's unknown fields, and the reconnect backoff."""

import json
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from devices.models import Alarm, DeadLetter, DeviceEvent
from devices.services.status import report_infusion_id
from protocol.schemas import PayloadError, device_timestamp_parse, payload_decode, payload_parse
from realtime.bridge.ingest import InboundMessage, Rejection, message_check
from realtime.bridge.link import reconnect_delay
from tests.factories import make_device
from tests.support.ingest import ingest, report, send


def test_legacy_forms_are_coerced():
    assert payload_parse("progress", {"progressPercent": {"time": 12, "volume": 17.1}}).progressPercent == 17.1
    assert payload_parse("status", {"status": "ONLINE"}).status == "online"
    error = payload_parse("error", {"errorMessage": "Occlusion", "errorCode": 12})
    assert (error.type, error.text, error.errorCode) == ("device_error", "Occlusion", "12")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (64500, None),
        ("0:01:45.120", None),
        ("2026-11-28T10:00:00", None),
        ("2026-11-28T10:00:00+01:00", datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
        ("2026-11-28T10:00:00Z", datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        ("0001-01-01T00:00:00+01:00", None),  # an unset clock: before UTC's year 1 (OverflowError, was uncaught)
        ("9999-12-31T23:59:59-05:00", None),
    ],
)
def test_device_timestamps_parse_only_with_an_offset(value, expected):
    assert device_timestamp_parse(value) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"x" * 20, "too_large"), (b"\xff", "bad_utf8"), (b"[1]", "not_object"), (b'{"a": NaN}', "bad_json")],
)
def test_decode_rejections(raw, reason):
    with pytest.raises(PayloadError) as caught:
        payload_decode(raw, max_bytes=16)
    assert caught.value.reason == reason


def test_seq_is_a_message_key_only_with_boot_id():
    assert payload_parse("status", {"status": "idle", "seq": 3, "bootId": "b1"}).message_key == ("b1", 3)
    assert payload_parse("status", {"status": "idle", "seq": 3}).message_key is None


def test_payload_device_id_must_match_the_topic(settings):
    message = InboundMessage(topic="devices/PUMP_0001/status", payload=b'{"deviceId": "PUMP_0002", "status": "idle"}')
    with pytest.raises(Rejection) as caught:
        message_check(message)
    assert (caught.value.reason, caught.value.device_id) == ("device_mismatch", "PUMP_0001")


def test_reconnect_delay_is_jittered_and_capped():
    delays = [reconnect_delay(attempt, low=0.5, high=30) for attempt in range(40)]
    assert all(0.5 <= delay <= 30 for delay in delays)
    assert len(set(delays)) > 30, "delays must be jittered"
    assert max(reconnect_delay(20, low=0.5, high=30) for _ in range(200)) > 15, "late attempts reach the cap region"


ODD_FIELDS = [{"batteryLevel": 101}, {"batteryLevel": "5"}, {"timestamp": {"ms": 5}}, {"seq": -1, "bootId": "b"}]


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["degraded", "issue"])
@pytest.mark.parametrize("odd_field", ODD_FIELDS, ids=["battery-101", "battery-text", "ts-object", "seq-negative"])
def test_a_degraded_status_refused_for_another_field_still_raises_device_degraded(
    django_capture_on_commit_callbacks, status, odd_field
):
    """Review 15, finding 8: the schema refuses the whole status for one odd field, and only the `error` topic turned a
    refusal into an alarm: the pump said it needs attention and nobody was told. It is still dead-lettered."""
    make_device("ODD", has_presence=True)
    outcomes = send(django_capture_on_commit_callbacks, "ODD", "status", {"deviceId": "ODD", "status": status,
                                                                          **odd_field})  # fmt: skip
    alarms = list(
        Alarm.objects.filter(device__device_id="ODD", state="active").values_list("type", "priority", "source")
    )
    assert alarms == [("device_degraded", "medium", "server")], (
        f"the pump reported {status!r} with {odd_field}: refused ({dict(outcomes)}) and alarms {alarms}"
    )
    assert DeadLetter.objects.get().reason == "schema", "the refused status is still dead-lettered with its reason"
    assert "could not be read" in Alarm.objects.get(type="device_degraded").message


@pytest.mark.django_db
def test_a_refused_status_is_read_from_its_raw_bytes_and_only_degraded_or_issue_alarms(
    django_capture_on_commit_callbacks,
):
    """A status that is not even JSON is read from its raw bytes; a refused status saying anything else raises
    nothing (dead-lettered and counted only); nor does a refused one from a pump nobody registered."""
    make_device("RAW")
    raw = [(b'{"deviceId": "RAW", "status": "running", "batteryLevel": 101}', False),
           (b'{"status": "Degraded", "batteryLevel": 5,,}', True)]  # fmt: skip
    for payload, alarmed in raw:
        message = InboundMessage(topic="devices/RAW/status", payload=payload)
        ingest([message], django_capture_on_commit_callbacks)
        found = Alarm.objects.filter(device__device_id="RAW", type="device_degraded", state="active").exists()
        assert found == alarmed, f"{payload!r}: device_degraded active={found}"
    ingest([report("NOBODY", "status", {"status": "issue", "batteryLevel": 101})], django_capture_on_commit_callbacks)
    assert DeadLetter.objects.count() == 3 and Alarm.objects.count() == 1


STORED_PER_REPORT_MAX = 4 * 1024  # a real report is a few hundred bytes
JUNK = {f"x{n}": "y" * 100 for n in range(140)}  # ~15 KB of unknown fields, inside MAX_PAYLOAD_BYTES


def stored_bytes(device_id: str) -> int:
    return max(len(json.dumps(event.payload)) for event in DeviceEvent.objects.filter(device__device_id=device_id))


def fields_not_stored(kind: str) -> float:
    return REGISTRY.get_sample_value("pumpstream_bridge_fields_not_stored_total", {"kind": kind}) or 0.0


@pytest.mark.django_db
def test_a_status_padded_with_unknown_fields_is_not_stored_whole(django_capture_on_commit_callbacks):
    """Review 15, finding 6: budgets count messages, not bytes. Every non-routine report's fields were stored whole
    in the event log (kept 90 days): 15 KB statuses at the report budget (5/s) are ~6.7 GB a day from one pump."""
    make_device("PADDED")
    body = {"deviceId": "PADDED", "status": "idle", **JUNK}
    assert len(json.dumps(body)) < 16 * 1024
    counted = fields_not_stored("status")
    send(django_capture_on_commit_callbacks, "PADDED", "status", body)
    stored = stored_bytes("PADDED")
    assert stored <= STORED_PER_REPORT_MAX, (
        f"one status stored {stored:,} bytes of the pump's own unknown fields in the event log; at the report budget "
        f"(5/s) that is {stored * 5 * 86400 / 1e9:.1f} GB a day kept 90 days, from one pump"
    )
    payload = DeviceEvent.objects.get(device__device_id="PADDED", kind="mqtt.status").payload
    assert payload["status"] == "idle" and payload["deviceId"] == "PADDED", "the contract's fields are not kept"
    cut = payload["notStored"]
    assert cut["fields"] + sum(name.startswith("x") for name in payload) == 140, f"the cut is miscounted: {cut}"
    assert cut["bytes"] > 10_000, f"the bytes not stored are miscounted: {cut}"
    assert fields_not_stored("status") == counted + 1, "the cut message is not counted"


@pytest.mark.django_db
def test_an_alarm_padded_with_details_keeps_every_clinical_field(django_capture_on_commit_callbacks):
    make_device("PADDED_ALARM")
    details = {"pressureKpa": 93, **{f"d{n}": "y" * 100 for n in range(80)}}
    body = {"type": "occlusion", "severity": "high", "message": "Line blocked", "errorCode": "E12",
            "details": details, **{f"z{n}": "y" * 100 for n in range(60)}}  # fmt: skip
    assert len(json.dumps(body)) < 16 * 1024
    send(django_capture_on_commit_callbacks, "PADDED_ALARM", "error", body)
    alarm = Alarm.objects.get(device__device_id="PADDED_ALARM")
    assert (alarm.type, alarm.priority, alarm.message, alarm.error_code) == ("occlusion", "high", "Line blocked", "E12")
    assert alarm.details["pressureKpa"] == 93, "the details' first field, which fits, is lost"
    assert alarm.details["notStored"]["fields"] > 50, f"the alarm's details do not say they were cut: {alarm.details}"
    assert len(json.dumps(alarm.details)) <= STORED_PER_REPORT_MAX, "the alarm's details are stored whole"
    assert stored_bytes("PADDED_ALARM") <= STORED_PER_REPORT_MAX, "the error's event is stored whole"


def test_the_infusion_a_status_names_is_kept_whatever_comes_before_it():
    status = payload_parse("status", {"status": "running", **JUNK, "infusionId": "inf_1"})
    assert report_infusion_id(status) == "inf_1", "the cut took the infusion the status names"
    legacy = payload_parse("status", {"status": "running", "currentInfusion": {**JUNK, "infusionId": "inf_2"}})
    assert report_infusion_id(legacy) == "inf_2", "the cut took the infusion the status names in currentInfusion"


def test_a_report_within_the_bound_is_kept_whole():
    body = {"status": "running", "infusionId": "inf_1", "wifiRssi": -61, "currentInfusion": {"drug": "x" * 300}}
    assert payload_parse("status", body).model_dump(exclude_none=True) == body
