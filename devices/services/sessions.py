"""Infusion sessions: start (queues START), confirm, reject, pause, resume, stop, complete, cancel, time out."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Command, Device, InfusionSession, ProgressSample
from devices.models.infusions import RATE_DECIMALS
from devices.services.alarm_rules import alarms_session_clear
from devices.services.alarms import alarm_raise
from devices.services.changes import change_record, device_lock, event_record, session_changed, status_changed
from devices.services.commands import command_queue
from devices.services.readback import VOLUME_TOLERANCE_ML, readback_compare, readback_record
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    SESSION_TRANSITIONS,
    AlarmPriority,
    AlarmSource,
    CommandKind,
    Connectivity,
    PumpState,
    ReadBack,
    SessionStatus,
    is_legal,
)
from realtime import events

PUMP_STATE_FOR_SESSION = {
    SessionStatus.RUNNING: PumpState.RUNNING,
    SessionStatus.PAUSED: PumpState.PAUSED,
    SessionStatus.COMPLETED: PumpState.IDLE,
    SessionStatus.STOPPED: PumpState.IDLE,
}
ENDED_STATUSES = {
    SessionStatus.COMPLETED, SessionStatus.STOPPED, SessionStatus.REJECTED,
    SessionStatus.TIMED_OUT, SessionStatus.CANCELLED,
}  # fmt: skip


@dataclass(frozen=True)
class InfusionOrder:
    """What a clinician ordered, in the wire's units (mL/min, mL, min)."""

    flow_rate_ml_min: float
    planned_volume_ml: float
    planned_time_min: float
    bolus_enabled: bool = False
    bolus_volume_ml: float = 0.0
    drug: str = ""
    patient: dict | None = None  # name, age, weight_kg, bed, allergies; None means skipped


def order_validate(order: InfusionOrder, device: Device) -> None:
    """The server's rules for an order (the wizard checks the same); raises naming the wrong field."""
    for field, value in (
        ("flow_rate_ml_min", order.flow_rate_ml_min),
        ("planned_volume_ml", order.planned_volume_ml),
        ("planned_time_min", order.planned_time_min),
    ):
        if not isinstance(value, int | float) or value != value or value <= 0:
            raise PumpStreamError(f"{field} must be a positive number", code="invalid_order", field=field)
    if order.flow_rate_ml_min > device.max_rate_ml_min:
        raise PumpStreamError(
            f"Rate exceeds this pump's maximum of {device.max_rate_ml_min * 60:g} mL/h",
            code="invalid_order", field="flow_rate_ml_min",
        )  # fmt: skip
    if order.planned_volume_ml > device.max_volume_ml:
        raise PumpStreamError(
            f"Volume exceeds this pump's maximum of {device.max_volume_ml:g} mL",
            code="invalid_order", field="planned_volume_ml",
        )  # fmt: skip
    expected_volume = order.flow_rate_ml_min * order.planned_time_min
    if abs(expected_volume - order.planned_volume_ml) > max(VOLUME_TOLERANCE_ML, 0.01 * order.planned_volume_ml):
        raise PumpStreamError("Rate × time must equal the volume", code="invalid_order", field="planned_time_min")
    if order.bolus_enabled and not 0 < order.bolus_volume_ml <= order.planned_volume_ml:
        raise PumpStreamError(
            "Bolus volume must be positive and no more than the total volume",
            code="invalid_order", field="bolus_volume_ml",
        )  # fmt: skip


def parameters_match(session: InfusionSession, reported: dict | None) -> bool:
    """Whether a confirmation's read-back is a match (v1.1: missing parameters are not)."""
    return readback_compare(session, reported)[0] == ReadBack.MATCH


def session_transition(
    *, device: Device, session: InfusionSession, to: SessionStatus, reason: str = "",
    user: Any = None, now: datetime | None = None,
) -> InfusionSession:  # fmt: skip
    """Move a session along the transition table, with the pump state, audit event and change events."""
    if not is_legal(SESSION_TRANSITIONS, session.status, to):
        raise PumpStreamError(
            f"Infusion {session.infusion_id} cannot go from {session.status} to {to}", code="illegal_transition"
        )
    now = now or timezone.now()
    previous = session.status
    session.status = to
    session.status_reason = reason[:200]
    session.status_changed_at = now
    if to == SessionStatus.RUNNING and session.confirmed_at is None:
        session.confirmed_at = now
    if to == SessionStatus.PAUSED:
        session.paused_at = now
    session.ended_at = now if to in ENDED_STATUSES else None
    session.save()
    event_record(
        device=device, session=session, kind=f"session.{to}",
        payload={"infusionId": session.infusion_id, "from": previous, "to": to, "reason": reason},
        user=user, received_at=now,
    )  # fmt: skip
    session_changed(device=device, session=session)
    alarms_session_clear(device=device, session=session, now=now)
    _sample_state_change(session, now)
    pump_state = PUMP_STATE_FOR_SESSION.get(to)
    if pump_state and device.pump_state != pump_state:
        device.pump_state = pump_state
        device.save(update_fields=["pump_state"])
        status_changed(device=device, now=now)
    return session


def _sample_state_change(session: InfusionSession, now: datetime) -> None:
    progress = session.latest_progress or {}
    ProgressSample.objects.create(
        session=session, recorded_at=now, status=session.status,
        delivered_volume_ml=progress.get("deliveredVolumeMl"), volume_remaining_ml=progress.get("volumeRemainingMl"),
        time_remaining_min=progress.get("timeRemainingMin"), progress_percent=progress.get("progressPercent"),
        flow_rate_ml_min=progress.get("flowRate"),
    )  # fmt: skip


def infusion_start(*, device_id: str, order: InfusionOrder, user: Any = None) -> InfusionSession:
    """Create a pending session for a validated order and queue its START_INFUSION command."""
    now = timezone.now()
    try:
        with transaction.atomic():
            device = device_lock(device_id=device_id)
            order_validate(order, device)
            if device.connectivity(now=now) == Connectivity.OFFLINE:
                raise PumpStreamError("The pump is offline", code="device_offline")
            if InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).exists():
                raise PumpStreamError("This pump already has an active infusion", code="session_active")
            session = _session_create(device, order, user, now)
            event_record(
                device=device, session=session, kind="user.infusion_start",
                payload={"infusionId": session.infusion_id, "order": session.order, "drug": order.drug,
                         "patientSkipped": session.patient_skipped},
                user=user, received_at=now,
            )  # fmt: skip
            session_changed(device=device, session=session)
            command_queue(
                device=device, kind=CommandKind.START_INFUSION, session=session, user=user, now=now,
                payload={"infusionId": session.infusion_id, **session.order},
            )  # fmt: skip
    except IntegrityError as exc:  # the database's guard: one active session per pump
        raise PumpStreamError("This pump already has an active infusion", code="session_active") from exc
    return session


def _session_create(device: Device, order: InfusionOrder, user: Any, now: datetime) -> InfusionSession:
    patient = order.patient or {}
    return InfusionSession.objects.create(
        device=device, status=SessionStatus.PENDING, created_at=now, status_changed_at=now,
        flow_rate_ml_min=round(order.flow_rate_ml_min, RATE_DECIMALS), planned_volume_ml=order.planned_volume_ml,
        planned_time_min=order.planned_time_min, bolus_enabled=order.bolus_enabled,
        bolus_volume_ml=order.bolus_volume_ml if order.bolus_enabled else 0.0, drug=order.drug[:100],
        patient_skipped=order.patient is None, patient_name=patient.get("name", "")[:200],
        patient_age=patient.get("age"), patient_weight_kg=patient.get("weight_kg"),
        patient_bed=patient.get("bed", "")[:32], patient_allergies=patient.get("allergies", "")[:500],
        started_by=user if getattr(user, "is_authenticated", False) else None,
    )  # fmt: skip


def infusion_confirm(
    *, device: Device, infusion_id: str, confirmed: bool, parameters: dict | None,
    confirmation: dict, now: datetime | None = None,
) -> InfusionSession:  # fmt: skip
    """Apply a pump's answer to START_INFUSION; idempotent, so a replayed answer changes nothing."""
    now = now or timezone.now()
    session = InfusionSession.objects.filter(infusion_id=infusion_id, device=device).first()
    if session is None:
        raise PumpStreamError(f"No infusion {infusion_id} on this pump", code="unknown_session")
    if not confirmed:
        if session.status == SessionStatus.PENDING:
            session.confirmation = confirmation
            session_transition(device=device, session=session, to=SessionStatus.REJECTED,
                               reason="rejected at the pump", now=now)  # fmt: skip
        return session
    if session.status == SessionStatus.PENDING:
        _confirm_running(device, session, parameters, confirmation, now)
    elif session.status in (SessionStatus.TIMED_OUT, SessionStatus.CANCELLED):
        _cancel_newer_pending(device, session, now)
        late_from = session.status
        _confirm_running(device, session, parameters, confirmation, now)
        alarm_raise(
            device=device, session=session, type="confirmed_late", priority=AlarmPriority.HIGH,
            source=AlarmSource.SERVER, now=now,
            message=f"The pump confirmed infusion {infusion_id} after it was {late_from}: it is running",
        )  # fmt: skip
    return session


def _confirm_running(
    device: Device, session: InfusionSession, parameters: dict | None, confirmation: dict, now: datetime
) -> None:
    session.reported_parameters = parameters
    session.confirmation = confirmation
    session.read_back, _ = readback_compare(session, parameters)  # shown with the session's first running event
    session_transition(device=device, session=session, to=SessionStatus.RUNNING, reason="confirmed", now=now)
    change_record(device=device, event=events.DEVICE_INFUSION_CONFIRMED, body=events.confirmation_body(session))
    readback_record(device=device, session=session, reported=parameters, now=now)


def _cancel_newer_pending(device: Device, late: InfusionSession, now: datetime) -> None:
    newer = InfusionSession.objects.filter(
        device=device, status__in=ACTIVE_SESSION_STATUSES, created_at__gt=late.created_at
    ).first()
    if newer is not None and newer.status == SessionStatus.PENDING:
        session_transition(device=device, session=newer, to=SessionStatus.CANCELLED,
                           reason=f"the pump confirmed older infusion {late.infusion_id}", now=now)  # fmt: skip


def infusion_cancel(*, infusion_id: str, user: Any = None, reason: str = "cancelled by user") -> InfusionSession:
    """Cancel a pending start; the pump is told STOP_INFUSION to clear its confirm screen."""
    return _end_pending(infusion_id, SessionStatus.CANCELLED, reason, user)


def infusion_time_out(*, infusion_id: str) -> InfusionSession:
    """A pending start unconfirmed past the confirmation timeout; followed by STOP_INFUSION."""
    return _end_pending(infusion_id, SessionStatus.TIMED_OUT, "no confirmation from the pump in time", None)


def _end_pending(infusion_id: str, to: SessionStatus, reason: str, user: Any) -> InfusionSession:
    with transaction.atomic():
        session = InfusionSession.objects.select_related("device").filter(infusion_id=infusion_id).first()
        if session is None:
            raise PumpStreamError(f"No infusion {infusion_id}", code="not_found")
        device = device_lock(device_id=session.device.device_id)
        session.refresh_from_db()
        if session.status == to:
            return session
        session_transition(device=device, session=session, to=to, reason=reason, user=user)
        command_queue(
            device=device, kind=CommandKind.STOP_INFUSION, session=session, user=user,
            payload={"reason": reason, "emergency": False, "infusionId": session.infusion_id},
        )  # fmt: skip
    return session


USER_COMMAND_NEEDS = {
    CommandKind.PAUSE_INFUSION: (SessionStatus.RUNNING,),
    CommandKind.RESUME_INFUSION: (SessionStatus.PAUSED,),
    CommandKind.STOP_INFUSION: (SessionStatus.RUNNING, SessionStatus.PAUSED),
}


def infusion_request(*, device_id: str, kind: CommandKind, user: Any = None, reason: str = "") -> Command:
    """Queue PAUSE, RESUME or STOP for the pump's active session; the session moves when the pump reports."""
    if kind not in USER_COMMAND_NEEDS:
        raise PumpStreamError(f"{kind} cannot be requested here", code="invalid_command")
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        session = InfusionSession.objects.filter(device=device, status__in=USER_COMMAND_NEEDS[kind]).first()
        if session is None:
            raise PumpStreamError(f"No infusion on this pump can take {kind}", code="illegal_transition")
        payload: dict = {"infusionId": session.infusion_id}
        if kind == CommandKind.PAUSE_INFUSION:
            payload["reason"] = reason or "paused by user"
        elif kind == CommandKind.STOP_INFUSION:
            payload.update(reason=reason or "stopped by user", emergency=False)
        event_record(device=device, session=session, kind=f"user.{kind.lower()}",
                     payload={"infusionId": session.infusion_id, "reason": reason}, user=user)  # fmt: skip
        return command_queue(device=device, kind=kind, session=session, payload=payload, user=user)
