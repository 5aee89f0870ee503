"""A pump's word on an order the server placed: its answer to START_INFUSION (confirmed and read back, or rejected),
and an order the server had ended that the pump runs after all (evidence wins: `infusion_running_late`)."""

from datetime import datetime

from django.utils import timezone

from devices import payloads
from devices.exceptions import PumpStreamError
from devices.models import Alarm, Device, InfusionSession
from devices.services.alarms import alarm_clear, alarm_raise
from devices.services.changes import change_record, session_changed
from devices.services.clearing_stops import clearing_stops_withdraw
from devices.services.commands import PUBLISHED_STATES, commands_settle
from devices.services.paused_runs_again import found_paused, interruption_latest, paused_run_answer
from devices.services.readback import UNVERIFIED_KEY, readback_compare, readback_missing, readback_record
from devices.services.readback_received import readback_on_evidence, readback_received_off
from devices.services.restart_commands import commands_lost_recall
from devices.services.restarts import pump_restarted_since
from devices.services.sessions import RECORD_ENDED_BY, session_transition
from devices.services.start_refusals import refusal_reason
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    SESSION_ON_PUMP_STATUSES,
    AlarmPriority,
    AlarmSource,
    AlarmState,
    CommandKind,
    CommandState,
    ReadBack,
    SessionStatus,
)
from protocol import events

# ended by the server, yet a pump may report it running again (evidence wins)
LATE_FROM = (SessionStatus.TIMED_OUT, SessionStatus.CANCELLED, SessionStatus.INTERRUPTED)


def parameters_match(session: InfusionSession, reported: dict | None) -> bool:
    """Whether a confirmation's read-back is a match (v1.1: missing parameters are not)."""
    return readback_compare(session, reported)[0] == ReadBack.MATCH


def infusion_confirm(
    *, device: Device, infusion_id: str, confirmed: bool, parameters: dict | None,
    confirmation: dict, now: datetime | None = None, parameters_unreadable: str = "",
) -> InfusionSession:  # fmt: skip
    """Apply a pump's answer to START_INFUSION; idempotent, so a replayed answer changes nothing.

    `parameters_unreadable`: why the `parameters` it reported could not be read (read in part without them): read
    back as unverified, its alarm saying so."""
    now = now or timezone.now()
    session = InfusionSession.objects.filter(infusion_id=infusion_id, device=device).first()
    if session is None:
        raise PumpStreamError(f"No infusion {infusion_id} on this pump", code="unknown_session")
    if not confirmed:
        if session.status == SessionStatus.PENDING:  # its reason kept: busy is not a person's Reject (`start_refusals`)
            session.confirmation = confirmation
            # the START it answered is done, before the session's end supersedes what is still under way
            commands_settle(device=device, kinds=(CommandKind.START_INFUSION,), to=CommandState.DONE, now=now,
                            session=session, states=PUBLISHED_STATES, published=True)  # fmt: skip
            session_transition(device=device, session=session, to=SessionStatus.REJECTED,
                               reason=refusal_reason(confirmation.get("reason")), now=now)  # fmt: skip
        return session
    if session.status == SessionStatus.PENDING:
        _confirm_running(device, session, parameters, confirmation, now, parameters_unreadable)
    elif session.status in SESSION_ON_PUMP_STATUSES and (
        session.unconfirmed_since is not None or parameters != session.reported_parameters
    ):
        # running on evidence (first, or again after a restart, which voids an earlier confirmation); now confirmed
        _read_back_record(device, session, parameters, confirmation, now, parameters_unreadable)
    elif session.status in LATE_FROM:
        if infusion_running_late(device=device, session=session, now=now, why="confirmed"):
            _read_back_record(device, session, parameters, confirmation, now, parameters_unreadable)
    return session


def infusion_confirm_late(
    *, device: Device, infusion_id: str, confirmed: bool, parameters: dict | None,
    confirmation: dict, now: datetime, parameters_unreadable: str = "",
) -> InfusionSession | None:  # fmt: skip
    """A confirmation that came late (`late_reports.py`: numbered below a message already applied of its boot), for
    the one thing it still says that rewinds nothing: the parameters the pump runs, read back, for its session running
    or paused on the pump's evidence and not yet confirmed (review 45, F2: the read-back stayed `unverified`, a bolus or
    planned time off the order never alarmed). It moves no session (a pending order does not run, an ended one does
    not run again: what the pump said since is newer); the session read back, or None."""
    session = InfusionSession.objects.filter(infusion_id=infusion_id, device=device).first()
    if not confirmed or session is None or session.status not in SESSION_ON_PUMP_STATUSES:
        return None
    if session.unconfirmed_since is None:
        return None
    _read_back_record(device, session, parameters, confirmation, now, parameters_unreadable)
    return session


def _confirm_running(
    device: Device, session: InfusionSession, parameters: dict | None, confirmation: dict, now: datetime,
    unreadable: str = "",
) -> None:  # fmt: skip
    session.running_evidence = "confirmation"
    session.reported_parameters = parameters
    session.confirmation = confirmation
    verdict, _ = readback_compare(session, parameters)  # shown with the session's first running event
    session.read_back = ReadBack.MISMATCH if readback_received_off(session) else verdict  # as `readback_record`
    session_transition(device=device, session=session, to=SessionStatus.RUNNING, reason="confirmed", now=now)
    change_record(device=device, event=events.DEVICE_INFUSION_CONFIRMED, body=payloads.confirmation_body(session))
    readback_record(device=device, session=session, reported=parameters, now=now, unreadable=unreadable)


def _read_back_record(
    device: Device, session: InfusionSession, parameters: dict | None, confirmation: dict, now: datetime,
    unreadable: str = "",
) -> None:  # fmt: skip
    """A confirmation for a session already running (on evidence, or late): keep it and read it back."""
    session.reported_parameters, session.confirmation, session.unconfirmed_since = parameters, confirmation, None
    session.save(update_fields=["reported_parameters", "confirmation", "unconfirmed_since"])
    verdict = readback_record(device=device, session=session, reported=parameters, now=now, unreadable=unreadable)
    if not readback_missing(session, parameters):  # its parameters reported, all of them
        reason = "matches the order" if verdict == ReadBack.MATCH else "reports its parameters (a mismatch)"
        alarm_clear(device=device, types=[UNVERIFIED_KEY], source=AlarmSource.SERVER, session=session,
                    reason=f"the pump's confirmation {reason}", now=now)  # fmt: skip
    session_changed(device=device, session=session)
    change_record(device=device, event=events.DEVICE_INFUSION_CONFIRMED, body=payloads.confirmation_body(session))


def infusion_running_late(
    *, device: Device, session: InfusionSession, now: datetime, why: str, to: SessionStatus = SessionStatus.RUNNING
) -> bool:
    """The pump runs an order the server had ended (timed out, cancelled, interrupted): evidence wins.

    `to` paused: the pump holds it paused (a `paused` status naming it: review 22, finding 5, a pump rebooted while
    its ordered infusion was paused): the same, but the order is paused, and a restart's `infusion_interrupted`
    clears only if it was paused when the pump restarted (one that ran and came back paused delivers nothing now).

    A newer pending order is cancelled (the pump runs this one), the STOP clearing this one's confirm screen not yet
    sent (a time-out's, or a cancel's: nobody asked it to stop a running order) is withdrawn
    (`clearing_stops_withdraw`), and the high `confirmed_late` alarm says so, naming the order cancelled; after a
    restart's interruption, its `infusion_interrupted` alarm clears instead (the pump resumed it; one paused then
    stays, saying so, unless a person resumed it: `_interrupted_answered`), unless it cost a newer order. An order
    whose record a person ended ("End record…": she judged it not running) raises `confirmed_late` too. While a newer
    order runs or is paused, this one does not run again (one active order per pump): `confirmed_late` says the pump
    reports an old order.
    Returns whether it runs again.
    """
    late_from, record_ended = session.status, session.status_reason.startswith(RECORD_ENDED_BY)
    ended_how = (
        f"its record was ended by {session.status_reason.removeprefix(RECORD_ENDED_BY)}"
        if record_ended
        else f"it was {late_from}"
    )
    newer = InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES, pk__gt=session.pk).first()
    if newer is not None and (
        newer.status in SESSION_ON_PUMP_STATUSES
        or (to == SessionStatus.PAUSED and newer.delivered_at is not None)  # review 24, finding 1
    ):
        _old_order_reported(device, session, newer, why, now)
        return False
    if newer is not None:
        session_transition(device=device, session=newer, to=SessionStatus.CANCELLED,
                           reason=f"the pump runs older infusion {session.infusion_id}", now=now)  # fmt: skip
    older = _older_on_pump_end(device, session, why, now)
    session.running_evidence = session.running_evidence or why
    new_run = _runs_anew(device, session, record_ended)
    if new_run or (session.confirmation is None and session.read_back == ""):
        # never confirmed, or confirmed before a restart that voids what was verified (review 14: a resumed order at
        # 10x its rate still read "parameters match"): checked as any order running on evidence (its progress's rate,
        # a new confirmation read back, `parameters_unverified` if none came within its grace, whatever came before)
        if new_run:  # what it told on receiving the order is not this run's either
            session.received_flow_rate_ml_min = session.received_parameters = None
        session.read_back = readback_on_evidence(session)
        session.unconfirmed_since, session.unverified_raised = now, False
        session.mismatch_flow_rate_ml_min = session.mismatch_seen_at = session.rate_matched_at = None  # the run before
    session_transition(device=device, session=session, to=to, reason=f"{why} after {late_from}", now=now)
    clearing_stops_withdraw(device=device, session=session, now=now,
                            why=f"runs infusion {session.infusion_id} ({why} after {late_from})")  # fmt: skip
    if to == SessionStatus.RUNNING:
        commands_lost_recall(device=device, session=session, why=f"{why} after {late_from}", now=now)
    if late_from == SessionStatus.INTERRUPTED:  # the contract: interrupted unless the pump then reports it running
        _interrupted_answered(device, session, to, now)
        if not record_ended and newer is None and older is None:
            return True  # it resumed after a restart, and cost no order
    cancelled = f"; the newer order {_named(newer)} was cancelled" if newer is not None else ""
    if older is not None:
        cancelled += f"; the older infusion {_named(older)} ({older.status_reason}) was ended"
    alarm_raise(
        device=device, session=session, type="confirmed_late", priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
        now=now, details={"reported": why, "cancelledInfusionId": newer.infusion_id if newer else None,
                          "endedInfusionId": older.infusion_id if older else None},
        message=f"The pump reports infusion {_named(session)} {to} after {ended_how}{cancelled}",
    )  # fmt: skip
    return True


def _runs_anew(device: Device, session: InfusionSession, record_ended: bool) -> bool:
    """Whether the pump runs this ended order in a run of its own, which voids what its confirmation verified: after
    an interruption (a restart, an idle report), but not after a person ended its record ("End record…": the server
    ended it, the pump went on running the order it confirmed; review 30 saw "did not report the parameters it runs"
    5 s after it, of an order it had confirmed matching), unless a restart was told since that end."""
    if session.status != SessionStatus.INTERRUPTED:
        return False
    return not record_ended or pump_restarted_since(device=device, since=session.ended_at or session.status_changed_at)


def _older_on_pump_end(device: Device, session: InfusionSession, why: str, now: datetime) -> InfusionSession | None:
    """An older order on the pump (running or paused) while the pump runs the newer `session`: the pump holds one
    infusion, and `session`'s evidence is the later word, so the older one is interrupted (review 24, finding 1: a
    restored paused order and the newer one the pump then ran made a second active session, refused by the database,
    every report of the one infusing dead-lettered). Returns it ended, or None."""
    older = InfusionSession.objects.filter(
        device=device, status__in=SESSION_ON_PUMP_STATUSES, pk__lt=session.pk
    ).first()
    if older is not None:
        session_transition(device=device, session=older, to=SessionStatus.INTERRUPTED, now=now,
                           reason=f"the pump runs newer infusion {session.infusion_id} ({why})")  # fmt: skip
    return older


def _interrupted_answered(device: Device, session: InfusionSession, to: SessionStatus, now: datetime) -> None:
    """The interrupted order is on the pump again: its `infusion_interrupted` clears when it is as it was when the pump
    restarted (running, or held paused). One that was running and came back paused stays: it delivers nothing; one
    that was paused and came back running is answered only by evidence that a person resumed it, else raised again,
    even if resolved (`paused_run_answer`: review 25, finding 1; review 26, findings 1 and 2)."""
    interruption = interruption_latest(session)
    if to == SessionStatus.PAUSED and not found_paused(interruption):
        return
    if to == SessionStatus.RUNNING and found_paused(interruption):
        paused_run_answer(device=device, session=session, interruption=interruption, now=now)
        return
    alarm_clear(device=device, types=["infusion_interrupted"], session=session, reason=f"the pump reports it {to}",
                now=now)  # fmt: skip


def _named(session: InfusionSession) -> str:
    return f"{session.infusion_id} ({session.drug})" if session.drug else session.infusion_id


def _old_order_reported(device: Device, old: InfusionSession, newer: InfusionSession, why: str, now: datetime) -> None:
    """The pump reports an ended order while a newer one is under way: nothing moves, a person must look (once)."""
    if Alarm.objects.filter(device=device, session=old, type="confirmed_late", state=AlarmState.ACTIVE).exists():
        return
    alarm_raise(
        device=device, session=old, type="confirmed_late", priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
        now=now, details={"reported": why, "newerInfusionId": newer.infusion_id, "newerStatus": newer.status},
        message=(f"The pump reports infusion {old.infusion_id} ({why}, {old.status}) while infusion "
                 f"{newer.infusion_id} is {newer.status}: check which order the pump is infusing"),
    )  # fmt: skip
