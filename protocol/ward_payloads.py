"""The payloads of the ward feeds and the stream's own events (`ward:summary`, `ward:silence`, `stream:subscribed`,
`error`) as typed models, on the same base and codec as the device events (`protocol/payloads.py`)."""

from protocol.payloads import (
    ConnectivityName,
    Escalation,
    Number,
    Payload,
    PriorityName,
    PumpStateName,
    SessionStatusName,
    Timestamp,
)


class TopAlarm(Payload):
    id: int
    type: str
    key: str
    priority: PriorityName
    message: str
    acknowledged: bool
    raisedAt: Timestamp | None
    escalation: Escalation | None


class WardPump(Payload):
    """One pump of `ward:summary`."""

    deviceId: str
    seq: int
    connectivity: ConnectivityName
    lastSeenAt: Timestamp | None
    hasPresence: bool
    pumpState: PumpStateName
    drug: str | None
    infusionId: str | None
    sessionStatus: SessionStatusName | None
    unordered: bool
    rateMlH: Number | None
    progressPercent: float | None
    timeRemainingMin: Number | None
    deliveredVolumeMl: Number | None
    volumeRemainingMl: Number | None
    topAlarm: TopAlarm | None  # the first of `alarms`
    alarms: list[TopAlarm]  # every active alarm, highest and newest first


class WardSummary(Payload):
    ward: str
    pumps: list[WardPump]


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
    deviceId: str
    room: str
    seq: int


class ErrorMessage(Payload):
    message: str
