"""A pump's reported `status`, applied (the contract's status table): presence, pump state, the session's moves.

Every move says who: a report answering a remote command is "paused remotely by <user>" (and audited
with that user), anything else "at the pump".
"""

from collections.abc import Callable
from datetime import datetime

from devices.models import Command, Device, InfusionSession
from devices.services.bare_answers import bare_start_answer_matches
from devices.services.changes import session_changed
from devices.services.commands import (
    PUBLISHED_STATES,
    command_answered,
    command_transition,
    commands_settle,
    is_published,
)
from devices.services.completions import completion_short_end
from devices.services.evidence import (
    ended_infusion_status_apply,
    ended_paused_apply,
    ended_session_named,
    infusion_evidence_apply,
    is_evidence_for,
    pending_named_evidence_apply,
    unordered_infusion_ended,
)
from devices.services.named import names_another, other_infusion_audit, other_infusion_reported
from devices.services.pump_state import pump_state_set
from devices.services.readback_received import readback_received_record, received_parameters
from devices.services.restarts import session_end_on_idle
from devices.services.running_reports import delivered_more
from devices.services.sessions import session_transition
from devices.services.start_refusals import REJECTED_AT_THE_PUMP
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    COMMAND_UNSETTLED_STATES,
    SESSION_ON_PUMP_STATUSES,
    SESSION_TRANSITIONS,
    CommandKind,
    CommandState,
    PumpState,
    SessionStatus,
    is_legal,
)
from protocol.schemas import DevicePayload

# What a reported status means at the pump: the session's new status, the pump state, and the
# command kind the report completes (None: none).
REPORTED_AT_PUMP = {
    SessionStatus.RUNNING: (PumpState.RUNNING, CommandKind.RESUME_INFUSION),
    SessionStatus.PAUSED: (PumpState.PAUSED, CommandKind.PAUSE_INFUSION),
    SessionStatus.STOPPED: (PumpState.IDLE, CommandKind.STOP_INFUSION),
    SessionStatus.COMPLETED: (PumpState.IDLE, None),
}
VERB = {SessionStatus.RUNNING: "resumed", SessionStatus.PAUSED: "paused", SessionStatus.STOPPED: "stopped"}


def session_for(device: Device, infusion_id: str | None, statuses: tuple) -> InfusionSession | None:
    """The session named by `infusion_id` on this pump if in `statuses`, else the pump's one in `statuses`."""
    sessions = InfusionSession.objects.filter(device=device, status__in=statuses)
    if infusion_id:
        return sessions.filter(infusion_id=infusion_id).first()
    return sessions.first()


def session_move_reported(
    device: Device, session: InfusionSession | None, to: SessionStatus, now: datetime, *,
    answers: CommandKind | None = None, at_pump: str = "",
) -> bool:  # fmt: skip
    """Move a session as the pump reported, naming who: the remote command it answers, else the pump.

    The commands of kind `answers` the pump was sent end `done` first (so they are not superseded); those never
    published are not needed (`commands_answered_settle`), and never named as the cause.
    """
    command = command_answered(device, session, answers, now)
    if answers is not None:
        commands_answered_settle(device, session, answers, VERB.get(to, to), now)
    if session is None or session.status == to or not is_legal(SESSION_TRANSITIONS, session.status, to):
        return False
    if command is not None:
        who = command.created_by.get_username() if command.created_by_id else "the server"
        reason, user = f"{VERB.get(to, to)} remotely by {who}", command.created_by
        if command.state == CommandState.FAILED:
            reason += f" ({_failed_carried_out(device, command, now)})"
    else:
        reason, user = at_pump or f"{VERB.get(to, to)} at the pump", None
    session_transition(device=device, session=session, to=to, reason=reason, user=user, now=now)
    return True


def commands_answered_settle(
    device: Device, session: InfusionSession | None, kind: CommandKind, reported: str, now: datetime
) -> None:
    """The pump reports what commands of `kind` ask (of `session`; None: any): those it was sent are `done` (also one
    handed to the broker whose PUBACK is not recorded yet: `is_published`); those still queued, never published,
    cannot have been carried out: `superseded`, not needed (never sent afterwards).

    But for the STOP of a start cancelled or timed out (its session ended): it is to clear the pump's confirm
    screen, which an idle pump may still show, so it stays queued and goes out.
    """
    pending = Command.objects.filter(device=device, kind=kind, state__in=COMMAND_UNSETTLED_STATES)
    if session is not None:
        pending = pending.filter(session=session)
    for command in pending.select_related("session", "created_by").order_by("created_at", "pk"):
        if is_published(command):
            command_transition(device=device, command=command, to=CommandState.DONE, now=now)
        elif command.session is None or command.session.status in ACTIVE_SESSION_STATUSES:
            command_transition(device=device, command=command, to=CommandState.SUPERSEDED, now=now,
                               error=f"not needed: the pump reported {reported} before it was sent")  # fmt: skip


def _failed_carried_out(device: Device, command: Command, now: datetime) -> str:
    """A command failed (its PUBACK came late, or the pump was slow) that the pump carried out within its deadline is
    `done` after all, saying so; returns what the session's move adds to "paused remotely by <user>"."""
    command_transition(device=device, command=command, to=CommandState.DONE, now=now,
                       error=f"carried out after it was reported failed: {command.error}")  # fmt: skip
    return "its command had been reported failed; the pump acted on it within its deadline"


def _status_at_pump(to: SessionStatus) -> Callable[[Device, DevicePayload, datetime], bool]:
    """The handler of a status that moves the session on the pump (running, paused, stopped, completed)."""
    pump_state, answers = REPORTED_AT_PUMP[to]

    def apply(device: Device, report: DevicePayload, now: datetime) -> bool:
        named = report_infusion_id(report)
        if to == SessionStatus.RUNNING:
            _running_evidence(device, report, now)
        elif not pending_named_evidence_apply(device=device, infusion_id=named, why=f"status {report.status}", now=now):
            if to == SessionStatus.PAUSED:
                ended_paused_apply(device=device, infusion_id=named, why=f"status {report.status}", now=now)
        session = session_for(device, None, SESSION_ON_PUMP_STATUSES)
        if names_another(device=device, infusion_id=named, current=session):
            return _other_infusion_status(device, report, named, session, pump_state, now)
        # A status that moves nothing (a heartbeat) leaves a silence alarm as it is: only progress or a move of the
        # session ends a silence, which is what the silence check measures from (`silent_sessions_filter`)
        ended_short = to == SessionStatus.COMPLETED and completion_short_end(
            device=device, session=session, now=now, sent=report.timestamp
        )  # short of the order: interrupted
        if not ended_short:
            session_move_reported(device, session, to, now, answers=answers)
        pump_state_set(device=device, state=pump_state)
        if pump_state == PumpState.IDLE:
            unordered_infusion_ended(device=device, reason=f"the pump reports {report.status}", now=now)
        return True

    return apply


def progress_paused_apply(*, device: Device, report: DevicePayload, now: datetime) -> bool:
    """Progress saying `paused` is the pump saying its infusion is paused: as a `paused` status naming the same
    infusion (a pending order it names ran, a remote PAUSE is done, the session pauses, audited); True if it moved.

    Progress naming another infusion than the one on the pump moves nothing (it is not shown either).
    """
    named = report.infusionId
    if not pending_named_evidence_apply(device=device, infusion_id=named, why="progress paused", now=now):
        ended_paused_apply(device=device, infusion_id=named, why="progress paused", now=now)  # as a paused status
    session = session_for(device, None, SESSION_ON_PUMP_STATUSES)
    if session is None or (named and named != session.infusion_id):
        return False
    return session_move_reported(device, session, SessionStatus.PAUSED, now, answers=CommandKind.PAUSE_INFUSION)


def progress_completed_apply(*, device: Device, report: DevicePayload, now: datetime) -> bool:
    """Progress saying `completed` is the pump saying its infusion finished: as a `completed` status naming the same
    infusion, the session on the pump completes (audited "completed at the pump"; its move makes the pump idle and
    says so), or ends interrupted when its figures say the order was not delivered (`completions`); True if it moved.
    The caller stores the report first, so it is that session's final progress.

    Progress naming another infusion than the one on the pump moves nothing; with no session on the pump the progress
    path already showed the pump idle (`progress._unordered_progress`).
    """
    named = report.infusionId
    session = session_for(device, None, SESSION_ON_PUMP_STATUSES)
    if session is None or (named and named != session.infusion_id):
        return False
    if completion_short_end(device=device, session=session, now=now):  # its own figures short of the order
        return True
    return session_move_reported(device, session, SessionStatus.COMPLETED, now, at_pump="completed at the pump")


def progress_resumed_apply(*, device: Device, session: InfusionSession | None, report: DevicePayload,
                           now: datetime) -> InfusionSession | None:  # fmt: skip
    """Running progress about the paused session on the pump (naming it, or nothing), or progress without a status
    whose delivered volume rose (`running_reports.delivered_more`), is the pump saying it runs it again: as a `running`
    status would (a RESUME under way ends done and names who); the session, whole, if it moved. A paused pump whose
    resume report was lost or refused and whose progress leaves `status` out stayed "Paused" on every screen while it
    infused (review 19); a statusless report of an unchanged volume (a paused pump reporting its setpoint) resumes
    nothing, and is not read back as running either (`running_reports.running_rates`).

    `session` may hold only some fields (the bulk path's): the row is read whole before it moves.
    """
    if session is None or session.status != SessionStatus.PAUSED:
        return None
    if report.status != "running" and not (report.status is None and delivered_more(device.latest_progress, report)):
        return None
    if report.infusionId and report.infusionId != session.infusion_id:
        return None
    whole = InfusionSession.objects.get(pk=session.pk)
    moved = session_move_reported(device, whole, SessionStatus.RUNNING, now, answers=CommandKind.RESUME_INFUSION)
    return whole if moved else None


def _running_evidence(device: Device, report: DevicePayload, now: datetime) -> None:
    """A `started`/`running` status is evidence for the order it names: the pending one, or one the server had
    ended (it runs late); naming none, for the pending order the pump received."""
    infusion_id = report_infusion_id(report)
    session = session_for(device, None, (SessionStatus.PENDING,))
    if infusion_id and (session is None or session.infusion_id != infusion_id):
        session = ended_session_named(device=device, infusion_id=infusion_id)
    if session is not None and is_evidence_for(session, infusion_id=infusion_id, status=report.status, kind="status"):
        infusion_evidence_apply(device=device, session=session, why=f"status {report.status}", now=now)


def report_infusion_id(report: DevicePayload) -> str | None:
    """The infusion a status names: an `infusionId` field, or `currentInfusion.infusionId`."""
    named = getattr(report, "infusionId", None)
    current = getattr(report, "currentInfusion", None)
    if not named and isinstance(current, dict):
        named = current.get("infusionId")
    return named if isinstance(named, str) and named else None


def _other_infusion_status(device: Device, report: DevicePayload, named: str, session: InfusionSession | None,
                           pump_state: PumpState, now: datetime) -> bool:  # fmt: skip
    """A status about another infusion than the one on the pump: audited; with no order on the pump, one naming an
    infusion the server had ended moves the pump's state and alarm (`ended_infusion_status_apply`). True if applied."""
    applied = ""
    if session is None:
        applied = ended_infusion_status_apply(device=device, infusion_id=named, pump_state=pump_state, now=now)
    other_infusion_audit(device=device, kind="status", what=report.status, infusion_id=named, current=session,
                         now=now, applied=applied)  # fmt: skip
    return bool(applied)


def _status_idle(device: Device, report: DevicePayload, now: datetime) -> bool:
    """`idle`/`healthy`: a STOP under way is done (the session stopped remotely), else the idle rule ends it."""
    session = session_for(device, None, SESSION_ON_PUMP_STATUSES)
    named = report_infusion_id(report)
    if names_another(device=device, infusion_id=named, current=session):
        return _other_infusion_status(device, report, named, session, PumpState.IDLE, now)
    if session is not None and command_answered(device, session, CommandKind.STOP_INFUSION, now) is not None:
        session_move_reported(device, session, SessionStatus.STOPPED, now, answers=CommandKind.STOP_INFUSION)
    else:
        commands_answered_settle(device, None, CommandKind.STOP_INFUSION, report.status, now)
        session_end_on_idle(device=device, reported=report.status, now=now, sent=report.timestamp)
    pump_state_set(device=device, state=PumpState.IDLE)
    unordered_infusion_ended(device=device, reason=f"the pump reports {report.status}", now=now)
    return True


def _names_another_pending(
    device: Device, report: DevicePayload, pending: InfusionSession | None, now: datetime
) -> bool:
    """Whether a start-related status names another infusion than the pending order (audited if so)."""
    return pending is not None and other_infusion_reported(
        device=device, kind="status", what=report.status, infusion_id=report_infusion_id(report), current=pending,
        now=now,
    )  # fmt: skip


def _start_answer_for(device: Device, report: DevicePayload, now: datetime) -> tuple[bool, InfusionSession | None]:
    """Whether a start-related status is about the pump now, and the pending order it applies to (None: none). Not about
    now: one naming another infusion, or, naming none, an earlier order's late answer (`bare_answers`), audited and
    applied to nothing."""
    session = session_for(device, None, (SessionStatus.PENDING,))
    if _names_another_pending(device, report, session, now):
        return False, None
    if session is None or report_infusion_id(report):
        return True, session
    if bare_start_answer_matches(device=device, session=session, report=report, now=now):
        return True, session
    return False, None


def _status_start_received(device: Device, report: DevicePayload, now: datetime) -> bool:
    about_now, session = _start_answer_for(device, report, now)
    if session is None:
        return about_now
    if session.delivered_at is None:
        # its own receipt: an answer before it that may have been this order's was the earlier order's
        session.delivered_at, session.answer_in_doubt = now, ""
        session.save(update_fields=["delivered_at", "answer_in_doubt"])
        session_changed(device=device, session=session)
    told = received_parameters(report)  # what its confirm screen shows: read back, never a confirmation
    if told:
        readback_received_record(device=device, session=session, told=told, now=now)
    commands_settle(device=device, kinds=(CommandKind.START_INFUSION,), to=CommandState.DELIVERED, now=now,
                    session=session, states=(CommandState.SENT,), published=True)  # fmt: skip
    return True


def _status_rejected(device: Device, report: DevicePayload, now: datetime) -> bool:
    about_now, session = _start_answer_for(device, report, now)
    if session is None:
        return about_now
    session.confirmation = {"confirmed": False, "source": "status"}
    # a START never sent is not done (the session's end supersedes it)
    commands_settle(device=device, kinds=(CommandKind.START_INFUSION,), to=CommandState.DONE, now=now, session=session,
                    states=PUBLISHED_STATES, published=True)  # fmt: skip
    session_move_reported(device, session, SessionStatus.REJECTED, now, at_pump=REJECTED_AT_THE_PUMP)
    return True


def _no_effect(device: Device, report: DevicePayload, now: datetime) -> bool:
    """Presence is stored with the other status fields; informational values change nothing else."""
    return True


# Each returns False when the status named another infusion than the current one (audited, nothing changed).
STATUS_EFFECTS: dict[str, Callable[[Device, DevicePayload, datetime], bool]] = {
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
