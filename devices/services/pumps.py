"""What pumps report, applied: presence, the status table, progress, confirmations, completion, actions, errors."""

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from devices.models import Command, Device, InfusionSession
from devices.services.alarms import (
    CLEARED_SUFFIX,
    alarm_clear,
    alarm_raise,
    alarm_type_key,
    priority_from_severity,
    types_cleared_by,
)
from devices.services.changes import change_record, device_lock, event_record, session_changed, status_changed
from devices.services.commands import command_transition
from devices.services.progress import progress_apply
from devices.services.sessions import infusion_confirm, session_transition
from devices.states import (
    SESSION_TRANSITIONS,
    AlarmPriority,
    AlarmSource,
    AlarmState,
    CommandKind,
    CommandState,
    Presence,
    PumpState,
    SessionStatus,
    is_legal,
)
from realtime import events
from realtime.mqtt import topics
from realtime.mqtt.schemas import DevicePayload, device_timestamp_parse

ON_PUMP = (SessionStatus.RUNNING, SessionStatus.PAUSED)
DEGRADED_STATUSES = ("degraded", "issue")
INFORMATIONAL_STATUSES = ("testing", *DEGRADED_STATUSES)
NOT_INFUSING = ("healthy", "idle", "stopped", "completed")  # the pump says it is not delivering
ACTION_TARGET = {
    "MANUAL_PAUSE": SessionStatus.PAUSED,
    "MANUAL_RESUME": SessionStatus.RUNNING,
    "MANUAL_STOP": SessionStatus.STOPPED,
}
UNSETTLED = (CommandState.SENT, CommandState.DELIVERED)


def pump_report_apply(*, device_id: str, kind: str, topic: str, report: DevicePayload, received_at: datetime) -> None:
    """Apply one accepted message from a registered pump; idempotent for replays of the same report."""
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        was_connectivity = device.connectivity(now=received_at)
        _pump_seen(device, report, received_at)
        if kind != topics.PROGRESS or report.status not in (None, "running"):
            _event(device, kind, topic, report, received_at)
        visible_change = REPORT_HANDLERS[kind](device, report, received_at)
        if visible_change or device.connectivity(now=received_at) != was_connectivity:
            status_changed(device=device, now=received_at)


def pump_mark_stale(*, device_id: str, now: datetime) -> None:
    """Announce that a pump without presence turned stale (its status now shows `degraded`)."""
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        status_changed(device=device, now=now)


def _event(device: Device, kind: str, topic: str, report: DevicePayload, now: datetime) -> None:
    event_record(
        device=device, kind=f"mqtt.{kind}", topic=topic, payload=report.model_dump(mode="json", exclude_none=True),
        session=device.active_session, device_timestamp=report.timestamp,
        device_timestamp_parsed=device_timestamp_parse(report.timestamp), device_seq=report.seq,
        boot_id=report.bootId or "", received_at=now,
    )  # fmt: skip


def _pump_seen(device: Device, report: DevicePayload, now: datetime) -> None:
    device.last_seen_at = now
    fields = ["last_seen_at"]
    if device.presence == Presence.OFFLINE and getattr(report, "status", None) != "offline":
        device.presence = Presence.ONLINE
        fields.append("presence")
    device.save(update_fields=fields)
    alarm_clear(device=device, types=["communication_lost"], reason="the pump is heard again", now=now)


def _session_for(device: Device, infusion_id: str | None, statuses: tuple) -> InfusionSession | None:
    """The session named by `infusion_id` on this pump if in `statuses`, else the pump's one in `statuses`."""
    sessions = InfusionSession.objects.filter(device=device, status__in=statuses)
    if infusion_id:
        return sessions.filter(infusion_id=infusion_id).first()
    return sessions.first()


def _move(device: Device, session: InfusionSession | None, to: SessionStatus, reason: str, now: datetime) -> bool:
    """Move a session if the table allows it; a report that is already true changes nothing."""
    if session is None or session.status == to or not is_legal(SESSION_TRANSITIONS, session.status, to):
        return False
    session_transition(device=device, session=session, to=to, reason=reason, now=now)
    return True


def _commands_settle(
    device: Device, kinds: tuple, to: CommandState, now: datetime, session: InfusionSession | None = None
) -> None:
    """Mark the pump's sent (or delivered) commands of `kinds` as `to`, from what the pump reported."""
    pending = Command.objects.filter(device=device, kind__in=kinds, state__in=UNSETTLED)
    if session is not None:
        pending = pending.filter(session=session)
    for command in pending.select_related("session", "created_by"):
        if to == CommandState.DONE or command.state == CommandState.SENT:
            command_transition(device=device, command=command, to=to, now=now)


def _pump_state(device: Device, state: PumpState) -> bool:
    if device.pump_state == state:
        return False
    device.pump_state = state
    device.save(update_fields=["pump_state"])
    return True


def _server_alarm(device: Device, type: str, priority: AlarmPriority, message: str, now: datetime) -> None:
    """Raise a server alarm once; while it is active, repeats of its cause are not news."""
    if not device.alarms.filter(type=type, error_code="", state=AlarmState.ACTIVE).exists():
        alarm_raise(device=device, type=type, priority=priority, source=AlarmSource.SERVER, message=message,
                    session=device.active_session, now=now)  # fmt: skip


# ---- status ---------------------------------------------------------------------------------------------


def _status(device: Device, report: DevicePayload, now: datetime) -> bool:
    visible = _status_fields(device, report)
    pump_state_before = device.pump_state
    STATUS_EFFECTS[report.status](device, report, now)
    if report.status in DEGRADED_STATUSES:
        _server_alarm(device, "device_degraded", AlarmPriority.MEDIUM, f"The pump reports {report.status}", now)
    elif report.status not in INFORMATIONAL_STATUSES:
        alarm_clear(device=device, types=["device_degraded"], reason=f"the pump reports {report.status}", now=now)
    if report.status in NOT_INFUSING:
        alarm_clear(device=device, types=["infusing_without_order"], source=AlarmSource.SERVER,
                    reason=f"the pump reports {report.status}", now=now)  # fmt: skip
    return visible or device.pump_state != pump_state_before


def _status_fields(device: Device, report: DevicePayload) -> bool:
    """Store what a status message says about the pump; True when something shown changed."""
    wanted = {"reported_status": report.status}
    if report.batteryLevel is not None:
        wanted["battery_level"] = round(report.batteryLevel)
    if report.firmwareVersion:
        wanted["firmware_version"] = report.firmwareVersion
    if report.status in ("online", "offline"):
        wanted["presence"] = Presence.ONLINE if report.status == "online" else Presence.OFFLINE
    changed = [name for name, value in wanted.items() if getattr(device, name) != value]
    for name in changed:
        setattr(device, name, wanted[name])
    if changed:
        device.save(update_fields=changed)
    return bool(changed)


def _status_idle(device: Device, report: DevicePayload, now: datetime) -> None:
    _pump_state(device, PumpState.IDLE)
    _commands_settle(device, (CommandKind.STOP_INFUSION,), CommandState.DONE, now)


# What a reported status means at the pump: the session's new status, the pump state, and the
# command kind the report completes (None: none).
REPORTED_AT_PUMP = {
    SessionStatus.RUNNING: (PumpState.RUNNING, CommandKind.RESUME_INFUSION),
    SessionStatus.PAUSED: (PumpState.PAUSED, CommandKind.PAUSE_INFUSION),
    SessionStatus.STOPPED: (PumpState.IDLE, CommandKind.STOP_INFUSION),
    SessionStatus.COMPLETED: (PumpState.IDLE, None),
}


def _status_at_pump(to: SessionStatus) -> Callable[[Device, DevicePayload, datetime], None]:
    """The handler of a status that moves the session on the pump (running, paused, stopped, completed)."""
    pump_state, settles = REPORTED_AT_PUMP[to]

    def apply(device: Device, report: DevicePayload, now: datetime) -> None:
        session = _session_for(device, None, ON_PUMP)
        _move(device, session, to, f"{to} at the pump", now)
        _pump_state(device, pump_state)
        if settles is not None:
            _commands_settle(device, (settles,), CommandState.DONE, now)

    return apply


def _status_start_received(device: Device, report: DevicePayload, now: datetime) -> None:
    session = _session_for(device, None, (SessionStatus.PENDING,))
    if session is None:
        return
    if session.delivered_at is None:
        session.delivered_at = now
        session.save(update_fields=["delivered_at"])
        session_changed(device=device, session=session)
    _commands_settle(device, (CommandKind.START_INFUSION,), CommandState.DELIVERED, now, session=session)


def _status_rejected(device: Device, report: DevicePayload, now: datetime) -> None:
    session = _session_for(device, None, (SessionStatus.PENDING,))
    if session is None:
        return
    session.confirmation = {"confirmed": False, "source": "status"}
    _move(device, session, SessionStatus.REJECTED, "rejected at the pump", now)
    _commands_settle(device, (CommandKind.START_INFUSION,), CommandState.DONE, now, session=session)


def _no_effect(device: Device, report: DevicePayload, now: datetime) -> None:
    """Presence is stored with the other status fields; informational values change nothing else."""


STATUS_EFFECTS: dict[str, Callable[[Device, DevicePayload, datetime], None]] = {
    "online": _no_effect,
    "offline": _no_effect,
    "healthy": _status_idle,
    "idle": _status_idle,
    "started": _status_at_pump(SessionStatus.RUNNING),
    "running": _status_at_pump(SessionStatus.RUNNING),
    "paused": _status_at_pump(SessionStatus.PAUSED),
    "stopped": _status_at_pump(SessionStatus.STOPPED),
    "completed": _status_at_pump(SessionStatus.COMPLETED),
    "received_start_command": _status_start_received,
    "rejected": _status_rejected,
    "degraded": _no_effect,
    "issue": _no_effect,
    "testing": _no_effect,
}


# ---- progress -------------------------------------------------------------------------------------------


def _progress(device: Device, report: DevicePayload, now: datetime) -> bool:
    """Progress on the one-message path (paused or completed progress; routine progress comes in bulk)."""
    progress_apply(device=device, report=report, received_at=now)
    return False


# ---- confirmations, completion, actions, errors, bolus ----------------------------------------------------


def _confirmation(device: Device, report: DevicePayload, now: datetime) -> bool:
    parameters = report.parameters.model_dump(exclude_none=True) if report.parameters else None
    session = infusion_confirm(
        device=device, infusion_id=report.infusionId, confirmed=report.confirmed, parameters=parameters,
        confirmation=report.model_dump(mode="json", exclude_none=True), now=now,
    )  # fmt: skip
    _commands_settle(device, (CommandKind.START_INFUSION,), CommandState.DONE, now, session=session)
    return False


def _completion(device: Device, report: DevicePayload, now: datetime) -> bool:
    session = _session_for(device, report.infusionId, ON_PUMP)
    if session is None:
        return False
    session.completion = report.model_dump(mode="json", exclude_none=True)
    _move(device, session, SessionStatus.COMPLETED, "completed at the pump", now)
    change_record(device=device, event=events.DEVICE_INFUSION_COMPLETED, body=events.completion_body(session))
    return _pump_state(device, PumpState.IDLE)


def _action(device: Device, report: DevicePayload, now: datetime) -> bool:
    session = _session_for(device, report.infusionId, ON_PUMP) or _session_for(device, None, ON_PUMP)
    target = ACTION_TARGET[report.action]
    _move(device, session, target, f"{report.action.lower()} at the pump", now)
    pump_state = {SessionStatus.PAUSED: PumpState.PAUSED, SessionStatus.RUNNING: PumpState.RUNNING}
    return _pump_state(device, pump_state.get(target, PumpState.IDLE))


def _error(device: Device, report: DevicePayload, now: datetime) -> bool:
    """An alarm at the pump; `X_cleared` clears the pump's own `X`/`X_detected`, never a server alarm (v1.1)."""
    error_code = report.errorCode or ""
    if alarm_type_key(report.type).endswith(CLEARED_SUFFIX):
        alarm_clear(device=device, types=types_cleared_by(report.type), error_code=error_code or None,
                    source=AlarmSource.DEVICE, reason=report.text or report.type, now=now)  # fmt: skip
        return False
    alarm_raise(
        device=device, type=report.type, error_code=error_code, priority=priority_from_severity(report.severity),
        source=AlarmSource.DEVICE, message=report.text, severity_reported=report.severity or "",
        details=report.details, session=device.active_session, device_timestamp=report.timestamp, now=now,
    )  # fmt: skip
    return False


def _recorded_only(device: Device, report: DevicePayload, now: datetime) -> bool:
    """Bolus and test messages: the audit event is all they change."""
    return False


REPORT_HANDLERS: dict[str, Callable[[Device, DevicePayload, datetime], bool]] = {
    topics.STATUS: _status,
    topics.PROGRESS: _progress,
    topics.INFUSION: _confirmation,
    topics.COMPLETION: _completion,
    topics.ACTIONS: _action,
    topics.ERROR: _error,
    topics.BOLUS: _recorded_only,
    topics.TEST: _recorded_only,
}


def pump_silence_check(*, device_id: str, now: datetime) -> bool:
    """Raise `communication_lost` if the pump's running session has been silent past the heartbeat timeout."""
    timeout = timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        running = InfusionSession.objects.filter(device=device, status=SessionStatus.RUNNING).exists()
        if not running or device.last_seen_at is None or now - device.last_seen_at <= timeout:
            return False
        silent_s = (now - device.last_seen_at).total_seconds()
        _server_alarm(device, "communication_lost", AlarmPriority.HIGH,
                      f"No message from the pump for {silent_s:.0f} s while infusing", now)  # fmt: skip
        return True
