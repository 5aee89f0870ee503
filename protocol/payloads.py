"""The Socket.IO device events' payloads (`device:*`) as typed models, and the check that each event carries its own.

The ward feeds' and the stream's own payloads are in `protocol/ward_payloads.py`; both stand on the strict, closed
base of `protocol/payload_codec.py`, whose `payload_to_wire` and `payload_from_wire` are the one codec to and from
the wire. `devices/payloads.py` builds these models from the database's rows. Field names are the wire's own
(camelCase), declared in the order the contract's events have always had, so the wire is unchanged.
"""

from typing import Any, Literal

from protocol import events
from protocol.payload_codec import (
    CommandKindName,
    CommandStateName,
    ConnectivityName,
    DeviceTimestamp,
    Number,
    Payload,
    PriorityName,
    PumpReport,
    PumpStateName,
    SessionStatusName,
    Timestamp,
    payload_to_wire,
)


# device:status
class PumpStatus(Payload):
    status: str  # as reported; `offline` when offline, `degraded` when stale
    reportedStatus: str | None
    connectivity: ConnectivityName
    pumpState: PumpStateName | None  # None: never heard, it reported nothing (not the stored default `idle`)
    lastSeenAt: Timestamp | None
    batteryLevel: int | None
    firmwareVersion: str | None
    hasPresence: bool
    heartbeatTimeoutS: Number
    ward: str | None
    bed: str | None = None  # where the pump is, as registered: what a station names it by


class StatusEvent(Payload):
    status: PumpStatus


# device:progress
class Progress(PumpReport):
    timestamp: DeviceTimestamp = None
    timeRemainingMin: Number | None = None
    volumeRemainingMl: Number | None = None
    deliveredVolumeMl: Number | None = None
    elapsedTimeMin: Number | None = None
    progressPercent: Number | dict | None = None  # the original firmware's `{time, volume}` in old rows
    flowRate: Number | None = None
    status: str | None = None
    infusionId: str | None
    receivedAt: Timestamp
    # The server's: what the order delivered in all once the pump's count went back (`Session.deliveredBeforeRunMl`);
    # left out while it never did
    deliveredInAllMl: Number | None = None


class ProgressEvent(Payload):
    progress: Progress


# device:error
class AlarmError(Payload):
    type: str
    key: str
    severity: str
    message: str
    details: dict
    errorId: int
    errorCode: str | None
    timestamp: DeviceTimestamp


class ErrorEvent(Payload):
    error: AlarmError


# device:notification
class NotificationData(Payload):
    alarmId: int
    type: str
    key: str
    errorCode: str | None
    infusionId: str | None
    alerts: int


class Notification(Payload):
    id: str
    type: Literal["error"]
    priority: Literal["critical", "warning", "info"]
    title: str
    message: str
    timestamp: Timestamp | None
    data: NotificationData
    showModal: bool


class NotificationEvent(Payload):
    notification: Notification


# device:infusion:confirmed and device:infusion:completed
class Confirmation(PumpReport):
    infusionId: str
    confirmed: bool
    parameters: dict | None


class ConfirmationEvent(Payload):
    confirmation: Confirmation


class Completion(PumpReport):
    infusionId: str
    completed: Literal[True]


class CompletionEvent(Payload):
    completion: Completion


# device:alarm
class ByAt(Payload):
    by: str | None
    at: Timestamp


class Resolved(ByAt):
    reason: str
    note: str | None


class Escalation(Payload):
    level: int
    at: Timestamp | None


class Alarm(Payload):
    id: int
    type: str  # as sent
    key: str  # the derived type key
    errorCode: str | None
    priority: PriorityName
    state: Literal["active", "cleared"]
    acknowledged: ByAt | None
    resolved: Resolved | None
    message: str
    raisedAt: Timestamp | None
    lastRaisedAt: Timestamp | None
    alertedAt: Timestamp | None
    alerts: int
    clearedAt: Timestamp | None
    count: int
    source: Literal["device", "server"]
    infusionId: str | None
    escalation: Escalation | None


class Escalated(Payload):
    tier: int
    group: str | None


class AlarmEvent(Payload):
    alarm: Alarm
    escalated: Escalated | None = None  # only on the change that escalated it


# device:session
class Bolus(Payload):
    enabled: bool
    volumeMl: Number | None


class Order(Payload):
    flowRateMlMin: Number
    plannedVolumeMl: Number | None
    plannedTimeMin: Number | None
    bolus: Bolus
    drug: str


class ProgressMismatch(Payload):
    """The running progress rate that made the read-back a mismatch (its `parameter_mismatch` names it)."""

    flowRateMlMin: Number
    receivedAt: Timestamp
    matchedSince: Timestamp | None = None  # its running rate back within tolerance of the order since (the alarm stays)


class DeliveryDivergence(Payload):
    """What raised the session's `delivery_divergence`: the delivered volume its progress reported against the order
    (`beyond_planned`: more than the whole order, `limitMl`, delivered in all, `deliveredBeforeMl` of it before its
    count went back; `faster_than_rate`: grew `grewMl` in `overMin` minutes, more than `limitMl` at `flowRateMlMin`;
    `count_went_back`: the count went back to `deliveredVolumeMl` where `deliveredBeforeMl` had been delivered, the
    whole order being `limitMl`)."""

    kind: Literal["beyond_planned", "faster_than_rate", "count_went_back"]
    deliveredVolumeMl: Number
    limitMl: Number
    grewMl: Number | None = None
    overMin: Number | None = None
    flowRateMlMin: Number | None = None
    deliveredBeforeMl: Number | None = None
    receivedAt: Timestamp


class Session(Payload):
    infusionId: str
    status: SessionStatusName
    order: Order
    reason: str | None
    createdAt: Timestamp | None
    deliveredAt: Timestamp | None
    confirmedAt: Timestamp | None
    endedAt: Timestamp | None
    reportedParameters: dict | None
    readBack: str | None
    patient: str | None
    patientBed: str | None
    runningEvidence: str | None
    # Since when it runs with no confirmation read back for this run (first on the pump's evidence, or again after a
    # restart, which voids what was confirmed before); null once confirmed for this run. While set, a
    # `reportedParameters` is what the pump confirmed before the restart, never what it runs now.
    unconfirmedSince: Timestamp | None = None
    progressMismatch: ProgressMismatch | None = None  # the running rate that made `readBack` a mismatch, if one did
    deliveryDivergence: DeliveryDivergence | None = None  # the delivered volume that raised `delivery_divergence`
    # True when this run's confirmation reported `parameters` that could not be read (it was read without them):
    # unverified, and the panels say "could not be read", never "not reported"
    parametersUnreadable: bool | None = None
    receivedFlowRateMlMin: Number | None = None  # the rate it said it received with the order (at `deliveredAt`)
    # What was delivered before the pump's delivered count last went back (a reboot or reset counting from 0 again):
    # the volume delivered in all is this plus the count its progress reports; null if the count never went back.
    deliveredBeforeRunMl: Number | None = None
    # A pending order's: the pump's answer naming no infusion ("received_start_command" or "rejected") that was not
    # applied because it may be an earlier order's, though it may be this one's; null once its own receipt applies.
    answerInDoubt: str | None = None


class SessionEvent(Payload):
    session: Session


# device:command
class Command(Payload):
    commandId: str
    command: CommandKindName
    state: CommandStateName
    by: str | None
    infusionId: str | None
    error: str | None
    createdAt: Timestamp | None
    expiresAt: Timestamp | None
    endedAt: Timestamp | None
    pumpConnectivity: str | None
    sentAt: Timestamp | None = None  # when the broker acknowledged its publication: a START's wait runs from it
    # when the broker link took it: published (the pump may act on it), still `queued` until its PUBACK is recorded
    publishedAt: Timestamp | None = None
    # v1.1: when the outbox marked it handed, committed before paho had it: it may have reached the pump though its
    # publication (`publishedAt`) is not recorded (the bridge stalled or stopped in between); null if never handed
    handedAt: Timestamp | None = None
    # v1.2: when the person pressed, as her page told it on the server's clock (null: the server's own command, or one
    # from before it was kept); `createdAt` is when the request reached the server
    askedAt: Timestamp | None = None


class CommandEvent(Payload):
    command: Command


# device:removed
class Removed(Payload):
    at: Timestamp
    by: str | None  # the administrator who deleted it, when known
    reason: str


class RemovedEvent(Payload):
    removed: Removed


DEVICE_EVENT_MODELS: dict[str, type[Payload]] = {
    events.DEVICE_STATUS: StatusEvent,
    events.DEVICE_PROGRESS: ProgressEvent,
    events.DEVICE_ERROR: ErrorEvent,
    events.DEVICE_NOTIFICATION: NotificationEvent,
    events.DEVICE_INFUSION_CONFIRMED: ConfirmationEvent,
    events.DEVICE_INFUSION_COMPLETED: CompletionEvent,
    events.DEVICE_ALARM: AlarmEvent,
    events.DEVICE_SESSION: SessionEvent,
    events.DEVICE_COMMAND: CommandEvent,
    events.DEVICE_REMOVED: RemovedEvent,
}


def device_event_to_wire(event: str, payload: Payload) -> dict[str, Any]:
    """A `device:*` event's body, refused (TypeError) unless it is that event's model."""
    expected = DEVICE_EVENT_MODELS.get(event)
    if expected is None or type(payload) is not expected:
        raise TypeError(
            f"{event} carries {expected.__name__ if expected else 'no model'}, not {type(payload).__name__}"
        )
    return payload_to_wire(payload)
