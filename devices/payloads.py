"""The bodies of the Socket.IO device events, built from the models as the typed payloads of `protocol/payloads.py`
(the ward feeds' bodies are `devices/ward_payloads.py`'s).

The event names and `DeviceChange` are in `protocol/events.py`; a payload becomes wire JSON only through
`protocol.payload_codec.payload_to_wire` (the change log, the API and the pages all take it from there).
"""

import re
from datetime import UTC, datetime

from django.conf import settings

from devices.models import Alarm, Command, Device, InfusionSession
from devices.states import PUMP_INFUSING_STATES, SESSION_ON_PUMP_STATUSES, AlarmPriority, Connectivity, SessionStatus
from protocol import payloads as wire

NOTIFICATION_PRIORITY = {AlarmPriority.HIGH: "critical", AlarmPriority.MEDIUM: "warning", AlarmPriority.LOW: "info"}
KEY_FORM = re.compile(r"[a-z0-9_]+")  # a type sent as a bare key (`communication_lost`), not as words


def iso(moment: datetime | None) -> str | None:
    """An aware datetime as ISO-8601 UTC, or None."""
    return moment.astimezone(UTC).isoformat() if moment else None


def status_body(device: Device, *, now: datetime | None = None) -> wire.StatusEvent:
    """`device:status`: as reported, but `offline` when offline and `degraded` when stale."""
    connectivity = device.connectivity(now=now)
    shown = device.reported_status or connectivity
    if connectivity == Connectivity.OFFLINE:
        shown = "offline"
    elif connectivity == Connectivity.STALE:
        shown = "degraded"
    return wire.StatusEvent(
        status=wire.PumpStatus(
            status=shown,
            reportedStatus=device.reported_status or None,
            connectivity=connectivity,
            pumpState=device.pump_state if device.last_seen_at else None,
            lastSeenAt=device.last_seen_at,
            batteryLevel=device.battery_level,
            firmwareVersion=device.firmware_version or None,
            hasPresence=device.has_presence,
            heartbeatTimeoutS=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"],
            ward=device.ward.code if device.ward_id else None,
            bed=device.bed or None,
        )
    )


def progress_body(
    progress: dict, *, infusion_id: str | None, received_at: datetime, session: InfusionSession | None = None
) -> wire.ProgressEvent:
    """`device:progress`: the stored progress fields, the device's timestamp, the session and receive time, and, once
    the pump's count went back, the volume `session` (the order it is about) delivered in all, the server's count."""
    in_all = delivered_in_all_told(session)
    counted = {"deliveredInAllMl": in_all} if in_all is not None else {}
    return wire.ProgressEvent(
        progress=wire.Progress(**{**progress, "infusionId": infusion_id, "receivedAt": received_at, **counted})
    )


def delivered_in_all_told(session: InfusionSession | None) -> float | None:
    """The volume the order delivered in all (each run of the pump's count, its highest, summed; a pump reporting only
    what remains counted as the planned volume less it), once its count went back; else None: the pump's own count
    says it (review 29, finding 4: the pages summed the pump's optional `deliveredVolumeMl` instead)."""
    if session is None or not session.delivered_before_run_ml or session.delivered_in_all_ml is None:
        return None
    return round(session.delivered_in_all_ml, 3)


def session_body(session: InfusionSession) -> wire.SessionEvent:
    """`device:session`: the session's status, order and reason, and what its read-back rests on."""
    order = session.order
    return wire.SessionEvent(
        session=wire.Session(
            infusionId=session.infusion_id,
            status=session.status,
            order=wire.Order(**{**order, "bolus": wire.Bolus(**order["bolus"]), "drug": session.drug}),
            reason=session.status_reason or None,
            createdAt=session.created_at,
            deliveredAt=session.delivered_at,
            confirmedAt=session.confirmed_at,
            endedAt=session.ended_at,
            reportedParameters=session.reported_parameters,
            readBack=session.read_back or None,
            # who the infusion is for, so Stop names the patient (read by its ward only: `sessions_visible_to`)
            patient=session.patient_name or None,
            patientBed=session.patient_bed or None,
            runningEvidence=session.running_evidence or None,
            # what the read-back panels may show as reported for the run under way (review 14, finding 4's screen)
            unconfirmedSince=session.unconfirmed_since,
            progressMismatch=_progress_mismatch(session),
            deliveryDivergence=_delivery_divergence(session),
            parametersUnreadable=_parameters_unreadable(session),
            receivedFlowRateMlMin=session.received_flow_rate_ml_min,  # before acceptance: never a confirmation
            deliveredBeforeRunMl=round(session.delivered_before_run_ml, 3) or None,  # the count never went back: None
            answerInDoubt=session.answer_in_doubt or None,  # a pending order's: may be an earlier order's
        )
    )


def _parameters_unreadable(session: InfusionSession) -> bool | None:
    """True when this run's confirmation was read without the `parameters` it reported (`protocol/salvage.py`)."""
    refused = (session.confirmation or {}).get("refusedFields")
    if session.unconfirmed_since is not None or not isinstance(refused, list):
        return None  # no confirmation of this run (first on evidence, or again after a restart)
    return True if "parameters" in refused else None


def _progress_mismatch(session: InfusionSession) -> wire.ProgressMismatch | None:
    """The running rate that made this run's read-back a mismatch, and when it was received; None if none did."""
    if session.mismatch_flow_rate_ml_min is None or session.mismatch_seen_at is None:
        return None
    return wire.ProgressMismatch(flowRateMlMin=session.mismatch_flow_rate_ml_min, receivedAt=session.mismatch_seen_at,
                                 matchedSince=session.rate_matched_at)  # fmt: skip


def _delivery_divergence(session: InfusionSession) -> wire.DeliveryDivergence | None:
    """The delivered volume that raised the session's latest `delivery_divergence` (`devices/services/delivery.py`)."""
    seen = session.delivery_divergence
    if not isinstance(seen, dict):
        return None
    numbers = {name: seen.get(name) for name in ("grewMl", "overMin", "flowRateMlMin", "deliveredBeforeMl")}
    return wire.DeliveryDivergence(kind=seen["kind"], deliveredVolumeMl=seen["deliveredVolumeMl"],
                                   limitMl=seen["limitMl"], receivedAt=datetime.fromisoformat(seen["receivedAt"]),
                                   **numbers)  # fmt: skip


def confirmation_body(session: InfusionSession) -> wire.ConfirmationEvent:
    """`device:infusion:confirmed`: the pump's answer to START_INFUSION."""
    confirmation = session.confirmation or {}
    return wire.ConfirmationEvent(
        confirmation=wire.Confirmation(**{
            **confirmation,
            "infusionId": session.infusion_id,
            "confirmed": bool(confirmation.get("confirmed", False)),
            "parameters": session.reported_parameters,
        })
    )  # fmt: skip


def completion_body(session: InfusionSession) -> wire.CompletionEvent:
    """`device:infusion:completed`: the completion as the pump reported it, with the session's id."""
    completion = {**(session.completion or {}), "infusionId": session.infusion_id, "completed": True}
    return wire.CompletionEvent(completion=wire.Completion(**completion))


def alarm_body(alarm: Alarm, *, escalated: wire.Escalated | None = None) -> wire.AlarmEvent:
    """`device:alarm`: the alarm's whole current state (`type` as sent, `key` the derived type key).

    `escalated` {`tier`, `group`} only on the change that escalated it.
    """
    state = wire.Alarm(
        id=alarm.pk,
        type=alarm.type_shown,
        key=alarm.type,
        errorCode=alarm.error_code or None,
        priority=alarm.priority,
        state=alarm.state,
        acknowledged=_by_at(alarm.acknowledged_by if alarm.acknowledged_by_id else None, alarm.acknowledged_at),
        resolved=_resolved(alarm),
        message=alarm.message,
        raisedAt=alarm.raised_at,
        lastRaisedAt=alarm.last_raised_at,
        alertedAt=alarm.alerted_at,
        alerts=alarm.alerts,
        clearedAt=alarm.cleared_at,
        count=alarm.count,
        source=alarm.source,
        infusionId=alarm.session.infusion_id if alarm.session_id else None,
        escalation=escalation_of(alarm),
    )
    return wire.AlarmEvent(alarm=state) if escalated is None else wire.AlarmEvent(alarm=state, escalated=escalated)


def escalation_of(alarm: Alarm) -> wire.Escalation | None:
    """`escalation` {`level`, `at`}: the tier an unacknowledged alarm reached since it last alerted, or None."""
    return wire.Escalation(level=alarm.escalation_level, at=alarm.escalated_at) if alarm.escalation_level else None


def _by_at(user, moment: datetime | None) -> wire.ByAt | None:
    """`{by, at}` of a user's act on an alarm, or None when nobody did it."""
    if moment is None:
        return None
    return wire.ByAt(by=user.get_username() if user is not None else None, at=moment)


def _resolved(alarm: Alarm) -> wire.Resolved | None:
    """`resolved` {`by`, `at`, `reason`, `note`}: a user cleared the alarm by hand (v1.1)."""
    if alarm.resolved_at is None:
        return None
    return wire.Resolved(by=alarm.resolved_by.get_username() if alarm.resolved_by_id else None, at=alarm.resolved_at,
                         reason=alarm.resolved_reason, note=alarm.resolved_note or None)  # fmt: skip


def error_body(alarm: Alarm, *, device_timestamp: object = None) -> wire.ErrorEvent:
    """`device:error`: the original's error event for a raised alarm (`type` as the pump sent it)."""
    return wire.ErrorEvent(
        error=wire.AlarmError(
            type=alarm.type_shown,
            key=alarm.type,
            severity=alarm.severity_reported or alarm.priority,
            message=alarm.message,
            details=alarm.details,
            errorId=alarm.pk,
            errorCode=alarm.error_code or None,
            timestamp=device_timestamp if device_timestamp is not None else iso(alarm.last_raised_at),
        )
    )


def notification_body(alarm: Alarm) -> wire.NotificationEvent:
    """`device:notification`: the original's notification shape, each time an alarm alerts (raised or re-alerted)."""
    shown = alarm.type_shown
    title = shown.replace("_", " ").capitalize() if KEY_FORM.fullmatch(shown) else shown  # a key: made readable
    return wire.NotificationEvent(
        notification=wire.Notification(
            id=f"alarm-{alarm.pk}-{alarm.alerts}",
            type="error",
            priority=NOTIFICATION_PRIORITY[alarm.priority],
            title=title,
            message=alarm.message or title,
            timestamp=alarm.alerted_at or alarm.last_raised_at,
            data=wire.NotificationData(
                alarmId=alarm.pk,
                type=shown,
                key=alarm.type,
                errorCode=alarm.error_code or None,
                infusionId=alarm.session.infusion_id if alarm.session_id else None,
                alerts=alarm.alerts,
            ),
            showModal=alarm.priority == AlarmPriority.HIGH,
        )
    )


def command_body(command: Command) -> wire.CommandEvent:
    """`device:command`: a command's id, kind, state and who sent it."""
    return wire.CommandEvent(
        command=wire.Command(
            commandId=str(command.command_id),
            command=command.kind,
            state=command.state,
            by=command.created_by.get_username() if command.created_by_id else None,
            infusionId=command.session.infusion_id if command.session_id else None,
            error=command.error or None,
            createdAt=command.created_at,
            askedAt=command.asked_at,
            expiresAt=command.expires_at,
            endedAt=command.ended_at,
            pumpConnectivity=command.pump_connectivity or None,
            sentAt=command.sent_at,
            publishedAt=command.published_at,
            handedAt=command.handed_at,
        )
    )


def percent_of(progress: dict) -> float | None:
    """`progressPercent` as a number (the original firmware may send `{time, volume}`)."""
    value = progress.get("progressPercent")
    if isinstance(value, dict):
        value = value.get("volume", value.get("time"))
    return float(value) if isinstance(value, int | float) else None


def unordered_progress(device: Device, session: InfusionSession | None) -> dict | None:
    """What a pump infusing without an order reports, else None: the pump running or paused with no order on it (no
    active session, or one still pending: never confirmed, so not on the pump, and owning no progress)."""
    if device.pump_state not in PUMP_INFUSING_STATES:
        return None
    if session is not None and session.status in SESSION_ON_PUMP_STATUSES:
        return None
    return device.latest_progress or {}


def progress_beside_pending(device: Device, session: InfusionSession | None) -> dict | None:
    """The pump's own progress while an order waits on it and it infuses something else (the order owns none:
    `InfusionSession.progress_on`): the monitor shows it as the pump's, with no infusion, beside the waiting order."""
    if session is None or session.status != SessionStatus.PENDING or device.pump_state not in PUMP_INFUSING_STATES:
        return None
    return device.latest_progress if device.latest_progress_at is not None else None


def removed_body(*, at: datetime, by: str | None) -> wire.RemovedEvent:
    """`device:removed`: the pump was deleted (by an administrator): it is no longer monitored."""
    return wire.RemovedEvent(removed=wire.Removed(at=at, by=by, reason="deleted by an administrator"))
