"""Infusion sessions' lifecycle: an order placed (a pending session, its START_INFUSION queued), and each move along
the transition table after it (the pump state, the audit event, a history point, the change events).

Who moves them: what people ask (pause, resume, stop, cancel, end a record; time-outs) in `requests`, what a pump
reports in `status`, `evidence` and `restarts`, its answer to START_INFUSION and an ended order it runs after all in
`confirmations`.
"""

from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Device, InfusionSession, ProgressSample
from devices.services.alarm_rules import alarms_session_settle
from devices.services.changes import device_lock, event_record, session_changed, status_changed
from devices.services.commands import command_queue, commands_supersede
from devices.services.orders import InfusionOrder, order_repeat_find, order_session_fields, order_validate
from devices.services.pump_state import pump_state_set
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    SESSION_ENDED_STATUSES,
    SESSION_TRANSITIONS,
    CommandKind,
    Connectivity,
    PumpState,
    SessionStatus,
    is_legal,
)

RECORD_ENDED_BY = "record ended by "  # an `interrupted` session's reason when a person ended its record

PUMP_STATE_FOR_SESSION = {
    SessionStatus.RUNNING: PumpState.RUNNING,
    SessionStatus.PAUSED: PumpState.PAUSED,
    SessionStatus.COMPLETED: PumpState.IDLE,
    SessionStatus.STOPPED: PumpState.IDLE,
    SessionStatus.INTERRUPTED: PumpState.IDLE,
}


def session_transition(
    *, device: Device, session: InfusionSession, to: SessionStatus, reason: str = "",
    user: Any = None, now: datetime | None = None, commands_kept: Collection[int] = (),
) -> InfusionSession:  # fmt: skip
    """Move a session along the transition table, with the pump state, audit event and change events.

    At its end its commands under way are superseded, but those in `commands_kept` (pks: a restart's, sent to the
    pump's new run, `restart_commands.commands_sent_to_the_new_run`)."""
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
    if previous in SESSION_ENDED_STATUSES or previous == SessionStatus.PENDING:  # it holds only newer reports:
        session.prior_progress_at = device.latest_progress_at  # a pending order owned none (`progress_on`); one
        # running again (evidence wins) is seen as live subscribers saw it, who dropped its progress at its end.
        # Evidence runs before the running report that makes it run is stored: that report is the order's.
    if previous in ACTIVE_SESSION_STATUSES or to in ACTIVE_SESSION_STATUSES:
        session.ward_id = device.ward_id  # on the pump it is its ward's: it ends the ward's it is in (moved with it)
    session.ended_at = now if to in SESSION_ENDED_STATUSES else None
    session.final_progress_at = device.latest_progress_at if to in SESSION_ENDED_STATUSES else None
    session.save()
    event_record(
        device=device, session=session, kind=f"session.{to}",
        payload={"infusionId": session.infusion_id, "from": previous, "to": to, "reason": reason},
        user=user, received_at=now,
    )  # fmt: skip
    if to in SESSION_ENDED_STATUSES:
        commands_supersede(device=device, session=session, now=now, kept=commands_kept)
    session_changed(device=device, session=session)
    alarms_session_settle(device=device, session=session, reason=reason, now=now, previous=previous)
    _sample_state_change(device, session, now, owned_progress=previous != SessionStatus.PENDING)
    pump_state = PUMP_STATE_FOR_SESSION.get(to)
    if pump_state and pump_state_set(device=device, state=pump_state):
        status_changed(device=device, now=now)
    return session


def _sample_state_change(device: Device, session: InfusionSession, now: datetime, *, owned_progress: bool) -> None:
    """A history point at each move; a session leaving `pending` owned no progress (the pump's figures were not its)."""
    progress = (session.progress_on(device) if owned_progress else None) or {}
    ProgressSample.objects.create(
        session=session, recorded_at=now, status=session.status,
        delivered_volume_ml=progress.get("deliveredVolumeMl"), volume_remaining_ml=progress.get("volumeRemainingMl"),
        time_remaining_min=progress.get("timeRemainingMin"), progress_percent=progress.get("progressPercent"),
        flow_rate_ml_min=progress.get("flowRate"),
    )  # fmt: skip


def infusion_start(
    *, device_id: str, order: InfusionOrder, user: Any = None, idempotency_key: str = ""
) -> InfusionSession:
    """Create a pending session for a validated order and queue its START_INFUSION command (under `idempotency_key`:
    the same request repeated, its reply lost, is answered with the order it placed, never a second order)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            device = device_lock(device_id=device_id)
            order_validate(order, device)
            placed = order_repeat_find(device=device, order=order, user=user, idempotency_key=idempotency_key)
            if placed is not None:
                return placed
            if device.connectivity(now=now) == Connectivity.OFFLINE:
                raise PumpStreamError("The pump is offline", code="device_offline")
            if InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).exists():
                raise PumpStreamError("This pump already has an active infusion", code="session_active")
            session = _session_create(device, order, user, now)
            event_record(
                device=device, session=session, kind="user.infusion_start",
                payload={"infusionId": session.infusion_id, "order": session.order, "drug": session.drug,
                         "patientSkipped": session.patient_skipped, "pumpState": device.pump_state},
                user=user, received_at=now,
            )  # fmt: skip
            session_changed(device=device, session=session)
            command_queue(
                device=device, kind=CommandKind.START_INFUSION, session=session, user=user, now=now,
                payload={"infusionId": session.infusion_id, **session.order}, idempotency_key=idempotency_key,
            )  # fmt: skip
    except IntegrityError as exc:  # the database's guard: one active session per pump
        raise PumpStreamError("This pump already has an active infusion", code="session_active") from exc
    return session


def _session_create(device: Device, order: InfusionOrder, user: Any, now: datetime) -> InfusionSession:
    return InfusionSession.objects.create(
        device=device, ward_id=device.ward_id, status=SessionStatus.PENDING, created_at=now, status_changed_at=now,
        prior_progress_at=device.latest_progress_at, **order_session_fields(order),
        started_by=user if getattr(user, "is_authenticated", False) else None,
    )  # fmt: skip
