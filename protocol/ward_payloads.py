"""The payloads of the ward feeds and the stream's own events (`ward:summary`, `ward:alarm`, `alarm:escalated`,
`ward:silence`, `stream:subscribed`, `error`) as typed models, on the same base and codec as the device events
(`protocol/payload_codec.py`). `SERVER_EVENT_MODELS` names the model of every server-to-client event."""

import logging

from pydantic import ValidationError

from protocol import events
from protocol.events import DeviceChange
from protocol.payload_codec import (
    ConnectivityName,
    Number,
    Payload,
    PriorityName,
    PumpStateName,
    SessionStatusName,
    Timestamp,
    payload_from_wire,
    payload_to_wire,
)
from protocol.payloads import DEVICE_EVENT_MODELS, Alarm, AlarmEvent, Escalated, Escalation

logger = logging.getLogger(__name__)


class TopAlarm(Payload):
    id: int
    type: str
    key: str
    priority: PriorityName
    message: str
    acknowledged: bool
    raisedAt: Timestamp | None
    lastRaisedAt: Timestamp | None
    alerts: int
    escalation: Escalation | None


class WardPump(Payload):
    """One pump of `ward:summary`."""

    deviceId: str
    seq: int
    connectivity: ConnectivityName
    lastSeenAt: Timestamp | None
    hasPresence: bool
    pumpState: PumpStateName | None  # None: never heard
    drug: str | None
    infusionId: str | None
    sessionStatus: SessionStatusName | None
    unordered: bool
    rateMlH: Number | None  # the rate the pump reported, never the order's
    progressPercent: float | None
    timeRemainingMin: Number | None
    deliveredVolumeMl: Number | None
    volumeRemainingMl: Number | None
    topAlarm: TopAlarm | None  # the first of `alarms`
    alarms: list[TopAlarm]  # every active alarm, the most urgent first (priority, unacknowledged, tier, newest)
    bed: str | None = None  # where the pump is: the station names its alarms by it
    orderedRateMlH: Number | None = None  # the rate of the order (`drug`'s), shown as ordered
    # What the order delivered before the pump's count went back (a reboot or reset counting from 0 again): delivered
    # in all is this plus `deliveredVolumeMl`, the pump's count; null if its count never went back
    deliveredBeforeRunMl: Number | None = None
    # The server's count of what the order delivered in all, beside `deliveredBeforeRunMl` (null with it): never the
    # pump's optional `deliveredVolumeMl` summed, which a pump reporting only `volumeRemainingMl` leaves out
    deliveredInAllMl: Number | None = None


class WardSummary(Payload):
    ward: str
    pumps: list[WardPump]
    full: bool = False  # every pump of the feed (the first summary of a subscription): drop any not listed
    left: list[str] = []  # pumps no longer the feed's (moved to another ward, their ward deleted, or deleted)


class WardAlarm(Payload):
    """`ward:alarm` (with the `feed` it was asked for) and `alarm:escalated` (with `escalated`): one alarm change
    of a pump, as its ward's feeds and escalation groups receive it (`ward`: the pump's ward)."""

    ward: str | None
    deviceId: str
    seq: int
    alarm: Alarm
    escalated: Escalated | None = None  # only on the change that escalated it
    feed: str | None = None  # `ward:alarm` only: the ward the feed was asked for, "*" included


def ward_alarm_of(change: DeviceChange) -> WardAlarm:
    """The ward form of a recorded `device:alarm` change (its body read back through the one codec)."""
    event = payload_from_wire(AlarmEvent, change.body)
    escalated = {"escalated": event.escalated} if "escalated" in event.model_fields_set else {}
    return WardAlarm(ward=change.ward_code, deviceId=change.device_id, seq=change.seq, alarm=event.alarm, **escalated)


def ward_alarm_body(change: DeviceChange) -> dict:
    """`ward_alarm_of(change)` on the wire; when the model refuses the recorded body (a field this version does
    not know or lacks, as another version's writer records it), that body as recorded, logged: a station must
    hear of an alarm whatever its form ("when in doubt, alarm"), as the pump's own room does."""
    try:
        return payload_to_wire(ward_alarm_of(change))
    except ValidationError as error:
        logger.error("alarm change sent as recorded: its body is not this version's form",
                     extra={"device_id": change.device_id, "seq": change.seq, "error": str(error)[:500]})  # fmt: skip
        return {"ward": change.ward_code, "deviceId": change.device_id, "seq": change.seq, **change.body}


class SilenceBreaker(Payload):
    alarmId: int
    deviceId: str
    priority: PriorityName
    type: str


class SilenceEnd(Payload):
    reason: str  # expired, ended, broken, renewed
    at: Timestamp | None
    by: str | None
    brokenBy: SilenceBreaker | None


class WardSilence(Payload):
    """`ward:silence`: on (`active`, with its start, time left, reason) or not (`ended`: how it ended)."""

    ward: str
    until: Timestamp | None
    by: str | None
    active: bool
    ended: SilenceEnd | None = None
    startedAt: Timestamp | None = None
    remainingS: Number | None = None
    reason: str | None = None
    priority: str | None = None


class StreamSubscribed(Payload):
    """`stream:subscribed`: a snapshot begins; `snapshotEvents` of the pump's events with this `seq` follow it."""

    deviceId: str
    room: str
    seq: int
    snapshotEvents: int | None = None  # how many: the snapshot is complete once that many have arrived


class ErrorMessage(Payload):
    """`error`: what was refused, and where it applies to one request, pump or ward, which."""

    message: str
    request: str | None = None  # the client's event that was refused
    deviceId: str | None = None  # a pump the socket may no longer watch
    ward: str | None = None  # a ward feed the socket may no longer follow
    requestWard: str | None = None  # the ward a refused `silence:ward` named (it stops no feed: never `ward`)
    code: str | None = None  # what refused it, for programs (`alarm_unseen`, `seen_required`, `invalid_seconds`)


def error_body(message: str, **where: str) -> dict:
    """An `error` event's body on the wire (`where`: `request`, `deviceId`, `ward`, `requestWard` or `code`)."""
    return payload_to_wire(ErrorMessage(message=message, **where))


SERVER_EVENT_MODELS: dict[str, type[Payload]] = {
    **DEVICE_EVENT_MODELS,
    events.STREAM_SUBSCRIBED: StreamSubscribed,
    events.WARD_SUMMARY: WardSummary,
    events.WARD_ALARM: WardAlarm,
    events.WARD_SILENCE: WardSilence,
    events.ALARM_ESCALATED: WardAlarm,
    events.ERROR: ErrorMessage,
}
