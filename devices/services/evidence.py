"""Evidence wins (protocol v1.1): what a pump's reports show it infusing decides, not what the server expected.

Evidence that a pump is infusing a pending order: a `started`/`running` status or progress carrying its
`infusionId`; for a pump that sends no `infusionId` (the original firmware), a `started`/`running` status
or progress after its `received_start_command`; a `bolus` report with the session's id; or a completion, action or
`paused`/`stopped`/`completed` status naming it (the pump had it: it ran, then ended or paused). Such evidence
makes the pending session `running` (read-back `unverified` until a confirmation's parameters are compared;
`parameters_unverified` if none came within EVIDENCE_CONFIRMATION_GRACE_S), and an order the server had ended
(timed out, cancelled, interrupted) runs again with a high alarm. A pump infusing with no order raises
`infusing_without_order`, or `infusing_after_stop` when the server's last STOP to it went out.
"""

import logging
from datetime import datetime

from devices.models import Alarm, Command, Device, InfusionSession
from devices.services.alarms import alarm_clear, alarm_raise
from devices.services.changes import session_changed
from devices.services.commands import command_not_carried_out_clear, commands_settle, is_published, went_out
from devices.services.confirmations import LATE_FROM, infusion_running_late
from devices.services.named import session_named
from devices.services.pump_state import pump_state_set
from devices.services.readback_received import readback_on_evidence
from devices.services.sessions import session_transition
from devices.states import (
    UNORDERED_ALARMS,
    AlarmPriority,
    AlarmSource,
    AlarmState,
    CommandKind,
    CommandState,
    PumpState,
    SessionStatus,
)

logger = logging.getLogger(__name__)

RUNNING_REPORTS = (None, "running", "started")
STOP_WENT_OUT = (CommandState.SENT, CommandState.DELIVERED, CommandState.DONE, CommandState.FAILED)  # or published


def is_evidence_for(session: InfusionSession, *, infusion_id: str | None, status: str | None, kind: str) -> bool:
    """Whether one report shows the pump infusing this session's order (kind: status, progress or bolus)."""
    if kind == "bolus":
        return infusion_id == session.infusion_id
    if status not in RUNNING_REPORTS or (kind == "status" and status is None):
        return False
    if infusion_id:
        return infusion_id == session.infusion_id
    return session.status == SessionStatus.PENDING and session.delivered_at is not None


def infusion_evidence_apply(
    *, device: Device, session: InfusionSession, why: str, now: datetime, to: SessionStatus = SessionStatus.RUNNING
) -> bool:
    """The pump infuses `session`: a pending one runs (read-back unverified), an ended one runs late; True if so.

    `to` paused, for an ended one: the pump holds it paused (`ended_paused_apply`)."""
    if session.status == SessionStatus.PENDING:
        session.running_evidence = why[:64]
        session.read_back, session.unconfirmed_since = readback_on_evidence(session), now  # unverified, or a mismatch
        commands_settle(device=device, kinds=(CommandKind.START_INFUSION,), to=CommandState.DONE, now=now,
                        session=session)  # fmt: skip
        session_transition(device=device, session=session, to=SessionStatus.RUNNING, now=now,
                           reason=f"the pump reports it infusing ({why})")  # fmt: skip
        # unverified until its confirmation's parameters come: `parameters_unverified` only if none came within
        # EVIDENCE_CONFIRMATION_GRACE_S (the bridge's housekeeping), for the original firmware's bolus report comes
        # 20 ms before its confirmation: raised at once, it sounded and was cleared at every such start (review 12)
        session_changed(device=device, session=session)
        extra = {"device_id": device.device_id, "infusion_id": session.infusion_id, "evidence": why}
        logger.info("pending infusion running on evidence", extra=extra)
        return True
    if session.status in LATE_FROM:
        running = infusion_running_late(device=device, session=session, now=now, why=why, to=to)
        if running and to == SessionStatus.RUNNING and _stop_went_out(device, session):
            _after_stop(device, session, now)
        return running  # not while a newer order is under way: `confirmed_late` on the old one says so
    return False


def pending_named_evidence_apply(*, device: Device, infusion_id: str | None, why: str, now: datetime) -> bool:
    """A report naming the pending order that says the pump completed, stopped or paused it: the order ran."""
    if not infusion_id:
        return False
    session = InfusionSession.objects.filter(device=device, infusion_id=infusion_id,
                                             status=SessionStatus.PENDING).first()  # fmt: skip
    return session is not None and infusion_evidence_apply(device=device, session=session, why=why, now=now)


def ended_paused_apply(*, device: Device, infusion_id: str | None, why: str, now: datetime) -> bool:
    """A `paused` status naming an order the server had ended (interrupted by a restart, timed out, cancelled): the
    pump holds that order paused, so it is paused again (evidence wins, as for running), never "the pump's own
    infusion" with `infusing_without_order` (review 22, finding 5). A status naming nothing guesses no order."""
    session = ended_session_named(device=device, infusion_id=infusion_id)
    return session is not None and infusion_evidence_apply(
        device=device, session=session, why=why, now=now, to=SessionStatus.PAUSED
    )


def ended_session_named(*, device: Device, infusion_id: str | None) -> InfusionSession | None:
    """The pump's ended session that `infusion_id` names, if it may still run (timed out, cancelled, interrupted)."""
    if not infusion_id:
        return None
    return InfusionSession.objects.filter(device=device, infusion_id=infusion_id, status__in=LATE_FROM).first()


def unordered_infusion_alarm(*, device: Device, now: datetime, session: InfusionSession | None = None) -> str:
    """A pump reports infusing with no order: `infusing_after_stop` if our last STOP went out, else without order.

    `session`: the infusion the server had ended that the report names, if any. The alarm is tied to it (so the
    pump's own end of it clears it), and a STOP counts only if it came after that infusion was ordered: a STOP to
    an older infusion says nothing about a later one that ended normally.
    """
    # the STOP placed last (`pk`), never the latest `created_at`: one placed on a clock ahead keeps it (review 50)
    last_stop = Command.objects.filter(device=device, kind=CommandKind.STOP_INFUSION).order_by("-pk").first()
    if (
        last_stop is not None
        and is_published(last_stop, states=STOP_WENT_OUT)
        and (session is None or last_stop.created_at >= session.created_at)
    ):
        _after_stop(device, session or last_stop.session, now)
        return "infusing_after_stop"
    alarm_raise(device=device, type="infusing_without_order", priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
                now=now, message="The pump reports an infusion the server did not order", session=session)  # fmt: skip
    return "infusing_without_order"


def unordered_infusion_flag(*, device: Device, now: datetime, session: InfusionSession | None = None) -> None:
    """The pump reports infusing with no order on it: its unordered-infusion alarm, unless one is active already
    (a heartbeat status repeats its cause every few seconds), or unless its `confirmed_late` is active: the order
    the server gave and ended, reported while a newer one is under way ("check which order the pump is infusing"),
    is not "an infusion the server did not order" (review 24, finding 1)."""
    if Alarm.objects.filter(device=device, type__in=UNORDERED_ALARMS, state=AlarmState.ACTIVE).exists():
        return
    told = (
        session is not None
        and session.status in LATE_FROM
        and Alarm.objects.filter(
            device=device, session=session, type="confirmed_late", state=AlarmState.ACTIVE
        ).exists()
    )
    if not told:
        unordered_infusion_alarm(device=device, now=now, session=session)


def ended_infusion_status_apply(*, device: Device, infusion_id: str, pump_state: PumpState, now: datetime) -> str:
    """No order on the pump, and a status names an infusion the server recorded as ended (completed, stopped,
    rejected): the pump's own infusion, its session left as recorded. Infusing: shown as reported, with its
    unordered-infusion alarm (tied to that infusion). Ended (idle): shown idle, its alarm cleared, only if it is
    that infusion the pump was shown infusing (an alarm tied to it): a late copy about it changes nothing else.
    Returns what was applied, "" for nothing."""
    named = session_named(device=device, infusion_id=infusion_id)
    if pump_state != PumpState.IDLE:
        unordered_infusion_flag(device=device, now=now, session=named)
        pump_state_set(device=device, state=pump_state)
        return "pump state and alarm"
    reason = "the pump reports the infusion it ran without an order ended"
    if named is None or not alarm_clear(device=device, types=list(UNORDERED_ALARMS), session=named, reason=reason,
                                        now=now):  # fmt: skip
        return ""
    pump_state_set(device=device, state=PumpState.IDLE)
    return "pump state idle and alarm cleared"


def _stop_went_out(device: Device, session: InfusionSession) -> bool:
    return Command.objects.filter(went_out(states=STOP_WENT_OUT), device=device, session=session,
                                  kind=CommandKind.STOP_INFUSION).exists()  # fmt: skip


def _after_stop(device: Device, session: InfusionSession | None, now: datetime) -> None:
    if Alarm.objects.filter(device=device, type="infusing_after_stop", state=AlarmState.ACTIVE).exists():
        return
    alarm_raise(device=device, session=session, type="infusing_after_stop", priority=AlarmPriority.HIGH,
                source=AlarmSource.SERVER, now=now,
                message="The pump reports infusing after it was sent STOP: check it at the bedside")  # fmt: skip


def unordered_infusion_ended(*, device: Device, reason: str, now: datetime) -> None:
    """The pump stopped (idle, stopped, completed) or an order explains it: its unordered-infusion alarms clear, the
    alarm of a STOP of that infusion it did not carry out, and the silence of that infusion (`communication_lost` of
    no session: the pump reports it ended, as a session's silence ends with the session)."""
    alarm_clear(device=device, types=list(UNORDERED_ALARMS), reason=reason, now=now)
    alarm_clear(device=device, types=["communication_lost"], source=AlarmSource.SERVER, without_session=True,
                reason=reason, now=now)  # fmt: skip
    command_not_carried_out_clear(device=device, session=None, reason=reason, now=now)
