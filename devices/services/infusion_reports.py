"""What pumps report about an infusion, applied: its confirmation, its completion, actions at the pump, boluses.

Handlers of `pumps.REPORT_HANDLERS`, called in the pump's locked transaction by `pumps.pump_report_apply`; each returns
True when something shown of the pump changed.
"""

from datetime import datetime

from devices import payloads
from devices.models import Device, InfusionSession
from devices.services.changes import change_record
from devices.services.commands import commands_settle
from devices.services.completions import COMPLETED_SHORT, completion_short_end
from devices.services.confirmations import infusion_confirm, infusion_confirm_late
from devices.services.evidence import (
    ended_session_named,
    infusion_evidence_apply,
    is_evidence_for,
    pending_named_evidence_apply,
    unordered_infusion_ended,
)
from devices.services.named import other_infusion_reported
from devices.services.pump_state import pump_state_set
from devices.services.readback import readback_bolus_check
from devices.services.status import session_for, session_move_reported
from devices.states import SESSION_ON_PUMP_STATUSES, CommandKind, CommandState, PumpState, SessionStatus
from protocol import events, topics
from protocol.salvage import REFUSED_FIELDS
from protocol.schemas import DevicePayload

ACTION_TARGET = {
    "MANUAL_PAUSE": SessionStatus.PAUSED,
    "MANUAL_RESUME": SessionStatus.RUNNING,
    "MANUAL_STOP": SessionStatus.STOPPED,
}
ACTION_PUMP_STATE = {SessionStatus.PAUSED: PumpState.PAUSED, SessionStatus.RUNNING: PumpState.RUNNING}
RESUME_EVIDENCE_KEPT = "kept as evidence that a person resumed the interrupted infusion at the pump, if it runs again"
COMPLETION_SUMMARY_WINDOW_S = 600.0  # a completion after the final progress completed its infusion still belongs to it


def confirmation_apply(device: Device, report: DevicePayload, now: datetime) -> bool:
    """The pump's answer to a start order (confirmed or refused, with the parameters it runs): the order settled."""
    session = infusion_confirm(device=device, infusion_id=report.infusionId, confirmed=report.confirmed, now=now,
                               **_confirmation_of(report))  # fmt: skip
    commands_settle(device=device, kinds=(CommandKind.START_INFUSION,), to=CommandState.DONE, now=now,
                    session=session)  # fmt: skip
    return False


def confirmation_apply_late(device: Device, report: DevicePayload, now: datetime) -> None:
    """A late answer to a start order (`late_reports.py`): only its parameters read back, for a session running on the
    pump's evidence (`infusion_confirm_late`); the order it answered settled then."""
    session = infusion_confirm_late(device=device, infusion_id=report.infusionId, confirmed=report.confirmed, now=now,
                                    **_confirmation_of(report))  # fmt: skip
    if session is not None:
        commands_settle(device=device, kinds=(CommandKind.START_INFUSION,), to=CommandState.DONE, now=now,
                        session=session)  # fmt: skip


def _confirmation_of(report: DevicePayload) -> dict:
    """A confirmation's parameters (as the pump reported them), the confirmation kept, and why its parameters could not
    be read (read in part without them)."""
    confirmation = report.model_dump(mode="json", exclude_none=True)
    if not report.refusals:  # `refusedFields` is the server's note on a report read in part: never the pump's own
        confirmation.pop(REFUSED_FIELDS, None)
    return {
        "parameters": report.parameters.model_dump(exclude_none=True) if report.parameters else None,
        "confirmation": confirmation,
        "parameters_unreadable": report.refusals.get("parameters", ""),
    }


def completion_apply(device: Device, report: DevicePayload, now: datetime) -> bool:
    """The pump finished the infusion it names (a pending one ran first: evidence), or, naming none, the one on it."""
    pending_named_evidence_apply(device=device, infusion_id=report.infusionId, why="completion", now=now)
    session = session_for(device, None, SESSION_ON_PUMP_STATUSES)
    if session is None and (finished := _completed_without_summary(device, report.infusionId, now)) is not None:
        return _completion_record(device, finished, report)
    if other_infusion_reported(device=device, kind=topics.COMPLETION, what="completed",
                               infusion_id=report.infusionId, current=session, now=now):  # fmt: skip
        return False
    if session is None:
        unordered_infusion_ended(device=device, reason="the pump reports completed", now=now)
        return pump_state_set(device=device, state=PumpState.IDLE)
    session.completion = report.model_dump(mode="json", exclude_none=True)  # kept by either ending
    sent = report.timestamp if report.timestamp is not None else getattr(report, "completedAt", None)
    if completion_short_end(device=device, session=session, now=now, summary=getattr(report, "summary", None),
                            sent=sent):  # fmt: skip
        return pump_state_set(device=device, state=PumpState.IDLE)  # not the order delivered: interrupted, said so
    session_move_reported(device, session, SessionStatus.COMPLETED, now, at_pump="completed at the pump")
    change_record(device=device, event=events.DEVICE_INFUSION_COMPLETED, body=payloads.completion_body(session))
    return pump_state_set(device=device, state=PumpState.IDLE)


def _completed_without_summary(device: Device, infusion_id: str | None, now: datetime) -> InfusionSession | None:
    """The infusion this completion is the summary of, already ended by the pump's final progress or status
    (`completed`, which both firmwares send just before it): completed, or interrupted as not the order delivered
    (`completions`); the one it names, or, naming none, the pump's newest, if ended within COMPLETION_SUMMARY_WINDOW_S
    and without a completion yet."""
    ended = (SessionStatus.COMPLETED, SessionStatus.INTERRUPTED)
    finished = session_for(device, infusion_id, ended if infusion_id else tuple(SessionStatus))
    if finished is None or finished.completion is not None or not _ended_by_completed(finished):
        return None
    recent = (now - finished.status_changed_at).total_seconds() <= COMPLETION_SUMMARY_WINDOW_S
    return finished if recent else None


def _ended_by_completed(session: InfusionSession) -> bool:
    """Whether the pump's `completed` ended `session`: completed, or interrupted as not the order delivered."""
    return session.status == SessionStatus.COMPLETED or (
        session.status == SessionStatus.INTERRUPTED and session.status_reason.startswith(COMPLETED_SHORT)
    )


def _completion_record(device: Device, session: InfusionSession, report: DevicePayload) -> bool:
    """Keep the pump's completion (its summary: volumes, times) with the infusion it already ended, and tell it (an
    interrupted one is told by its status and alarm: never as completed)."""
    session.completion = report.model_dump(mode="json", exclude_none=True)
    session.save(update_fields=["completion"])
    if session.status == SessionStatus.COMPLETED:
        change_record(device=device, event=events.DEVICE_INFUSION_COMPLETED, body=payloads.completion_body(session))
    return pump_state_set(device=device, state=PumpState.IDLE)


def action_apply(device: Device, report: DevicePayload, now: datetime) -> bool:
    """A person at the pump's own screen paused, resumed or stopped the infusion it names (or, naming none, the one
    on the pump): said so, whatever command was under way. A report naming another infusion changes nothing."""
    what = f"{report.action.lower()} at the pump"
    pending_named_evidence_apply(device=device, infusion_id=report.infusionId, why=report.action.lower(), now=now)
    session = session_for(device, None, SESSION_ON_PUMP_STATUSES)
    kept = _resume_evidence_kept if report.action == "MANUAL_RESUME" else None
    if other_infusion_reported(device=device, kind=topics.ACTIONS, what=report.action,
                               infusion_id=report.infusionId, current=session, now=now, kept=kept):  # fmt: skip
        return False
    target = ACTION_TARGET[report.action]
    session_move_reported(device, session, target, now, at_pump=what)
    pump_state = ACTION_PUMP_STATE.get(target, PumpState.IDLE)
    if pump_state == PumpState.IDLE:
        unordered_infusion_ended(device=device, reason=what, now=now)
    return pump_state_set(device=device, state=pump_state)


def _resume_evidence_kept(named: InfusionSession | None) -> str:
    """A MANUAL_RESUME naming an interrupted infusion moves nothing, but is the evidence that a person at the pump
    resumed it, read from the pump's event log if it runs again (`paused_runs_again`): never "not applied"."""
    if named is None or named.status != SessionStatus.INTERRUPTED:
        return ""
    return RESUME_EVIDENCE_KEPT


def bolus_report_apply(device: Device, report: DevicePayload, now: datetime) -> bool:
    """A bolus report with a pending (or ended) session's id is evidence that the pump infuses that order."""
    named = report.infusionId
    session = session_for(device, named, (SessionStatus.PENDING,)) if named else None
    session = session or ended_session_named(device=device, infusion_id=named)
    applied = False
    if session is not None and is_evidence_for(session, infusion_id=named, status=None, kind=topics.BOLUS):
        applied = infusion_evidence_apply(device=device, session=session, why="bolus report", now=now)
    on_pump = session_for(device, named, SESSION_ON_PUMP_STATUSES) if named else None
    if on_pump is not None:  # what it says it delivered, read back against the order's bolus (review 16)
        readback_bolus_check(device=device, session=on_pump, delivered=report.bolusDelivered, now=now)
    return applied
