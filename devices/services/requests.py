"""What people ask of a pump's infusion: pause, resume, stop, cancel a pending start, end a record; and time-outs.

Each request holds the pump's lock, checks the session's state, and queues at most one command per
intent: a repeated request (double click, retry) answers the command already under way.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Command, Device, InfusionSession
from devices.selectors import press_joined, pump_action_after, pump_online_latest, pump_status_latest
from devices.services.asked_at import ASKED_AT_MOST_S
from devices.services.changes import device_lock, event_record
from devices.services.clearing_stops import (
    TIME_OUT_STOP_REASON,
    TOLD_TO_CLEAR,
    clearing_stop_withheld_why,
    nothing_sent_because,
)
from devices.services.commands import command_queue, command_repeat_find
from devices.services.evidence import RUNNING_REPORTS
from devices.services.pumps import INFORMATIONAL_STATUSES
from devices.services.readback import readback_unverified_raise
from devices.services.sessions import RECORD_ENDED_BY, session_transition
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    PUMP_INFUSING_STATES,
    SESSION_ON_PUMP_STATUSES,
    CommandKind,
    Presence,
    ReadBack,
    SessionStatus,
)
from protocol.visible_text import text_kept


def infusion_cancel(*, infusion_id: str, user: Any = None, reason: str = "") -> InfusionSession:
    """Cancel a pending start; the pump is told STOP_INFUSION to clear its confirm screen (see `_end_pending`)."""
    who = user.get_username() if getattr(user, "is_authenticated", False) else "a user"
    return _end_pending(infusion_id, SessionStatus.CANCELLED, text_kept(reason) or f"cancelled by {who}", user)


def infusion_time_out(*, infusion_id: str) -> InfusionSession:
    """A pending start unconfirmed past the confirmation timeout; followed by STOP_INFUSION (see `_end_pending`)."""
    return _end_pending(infusion_id, SessionStatus.TIMED_OUT, TIME_OUT_STOP_REASON, None)


def _end_pending(infusion_id: str, to: SessionStatus, reason: str, user: Any) -> InfusionSession:
    """End a pending start and clear the pump's confirm screen with STOP, unless that would stop an infusion.

    Nobody asked that STOP to stop an infusion, a person's cancel no more than the server's time-out: so it is
    withheld from a pump that reports infusing since the order was placed, or has an infusion of its own under way
    (the original firmware knows no infusion ids: it would stop that one), and again, should the pump start infusing
    before it goes out, just before it is published (`clearing_stops.py`). The session's reason says which (the
    waiting window and the monitor show it); that infusion is stopped on purpose with the pump page's Stop.
    """
    with transaction.atomic():
        session = InfusionSession.objects.select_related("device").filter(infusion_id=infusion_id).first()
        if session is None:
            raise PumpStreamError(f"No infusion {infusion_id}", code="not_found")
        device = device_lock(device_id=session.device.device_id)
        session.refresh_from_db()
        if session.status == to:
            return session
        if session.status != SessionStatus.PENDING:
            raise PumpStreamError(f"Infusion {infusion_id} is {session.status}, not pending", code="illegal_transition")
        withheld = clearing_stop_withheld_why(device=device, session=session)
        told = nothing_sent_because(withheld, by_person=user is not None) if withheld else TOLD_TO_CLEAR
        session_transition(device=device, session=session, to=to, reason=f"{reason}; {told}", user=user)
        if withheld:
            event_record(device=device, session=session, kind="server.stop_withheld", user=user,
                         payload={"infusionId": infusion_id, "reason": withheld})  # fmt: skip
        else:
            command_queue(
                device=device, kind=CommandKind.STOP_INFUSION, session=session, user=user, clears_screen=True,
                payload={"reason": reason, "emergency": False, "infusionId": session.infusion_id},
            )  # fmt: skip
    return session


# What a report says of an infusion the pump holds (a progress without a status: running).
HELD_REPORTS = (*RUNNING_REPORTS, "paused")

USER_COMMAND_NEEDS = {
    CommandKind.PAUSE_INFUSION: (SessionStatus.RUNNING,),
    CommandKind.RESUME_INFUSION: (SessionStatus.PAUSED,),
    CommandKind.STOP_INFUSION: (SessionStatus.RUNNING, SessionStatus.PAUSED),
}
# A pump infusing without an order may be stopped all the same (a STOP without a session).


def infusion_request(
    *, device_id: str, kind: CommandKind, infusion_id: str | None, user: Any = None, reason: str = "",
    idempotency_key: str = "", asked_at: datetime | None = None, now: datetime | None = None,
) -> Command:  # fmt: skip
    """Queue PAUSE, RESUME or STOP for the infusion the person saw; the session moves when the pump reports.

    `infusion_id` is the infusion the person's dialog named (None: the pump's own infusion, without an order). If
    another infusion is on the pump now (hers ended, a colleague started another), it is refused
    (`infusion_changed`): a command acts only on what she saw. A repeated request (the same idempotency key) answers
    the command it queued; the same command still under way for the same infusion, asked by another press (a
    colleague's at the same moment), answers that command too, and her press is recorded as joining it
    (`user.<command>` with `joined`), never a second command to the pump. STOP needs no session when the pump reports
    infusing without an order.

    `asked_at`: when she pressed, as her page told it on the server's clock (None: not judged, a caller of the
    server's own). A request that reached the server more than ASKED_AT_MOST_S after it (held up in a stalled
    network), or after which the pump reported a change (`_changed_since`), is refused (`command_late`,
    `pump_changed`), nothing sent, and the refusal recorded (`user.command_refused`): it asked for what the screen
    showed at the press (review 46). A repeat of a request already answered is answered as before, however late.
    """
    if kind not in USER_COMMAND_NEEDS:
        raise PumpStreamError(f"{kind} cannot be requested here", code="invalid_command")
    now = now or timezone.now()
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        session = _infusion_shown_check(device, infusion_id)
        if session is not None and session.status not in USER_COMMAND_NEEDS[kind]:
            cancel = (
                " (it waits for the pump's confirmation: cancel the start instead)"
                if session.status == SessionStatus.PENDING
                else ""
            )
            raise PumpStreamError(f"Infusion {session.infusion_id} is {session.status}: it cannot take {kind}{cancel}",
                                  code="illegal_transition")  # fmt: skip
        if session is None and not (kind == CommandKind.STOP_INFUSION and _infusing_without_order(device)):
            raise PumpStreamError(f"No infusion on this pump can take {kind}", code="illegal_transition")
        repeat = command_repeat_find(device=device, kind=kind, session=session, idempotency_key=idempotency_key)
        if repeat is not None and idempotency_key and repeat.idempotency_key == idempotency_key[:64]:
            return repeat  # this very request again (its reply lost): answered, not asked again
        infusion_id, reason = session.infusion_id if session else None, text_kept(reason)  # the log's "(<reason>)"
        audit = {"infusionId": infusion_id, "reason": reason, **_order_waiting(device, session)}
        if asked_at is not None:
            audit["askedAt"] = asked_at.isoformat()
        refused = _asked_too_late(device, session, kind, asked_at, now) if asked_at is not None else None
        if refused is not None:
            event_record(device=device, session=session, kind="user.command_refused", user=user, received_at=now,
                         payload={**audit, "command": kind, "refused": refused.code, "message": refused.message,
                                  "receivedAfterS": round((now - asked_at).total_seconds(), 1)})  # fmt: skip
        elif repeat is not None:
            if not _press_recorded(device, kind, repeat, idempotency_key):
                joined = {"joined": str(repeat.command_id), "idempotencyKey": idempotency_key[:64],
                          "joinedBy": repeat.created_by.get_username() if repeat.created_by_id else None}  # fmt: skip
                event_record(device=device, session=session, kind=f"user.{kind.lower()}", user=user, received_at=now,
                             payload={**audit, **joined})  # fmt: skip
            return repeat
        else:
            payload: dict = {"infusionId": infusion_id}
            if kind == CommandKind.PAUSE_INFUSION:
                payload["reason"] = reason or "paused by user"
            elif kind == CommandKind.STOP_INFUSION:
                payload.update(reason=reason or "stopped by user", emergency=False)
            event_record(device=device, session=session, kind=f"user.{kind.lower()}", payload=audit, user=user,
                         received_at=now)  # fmt: skip
            return command_queue(device=device, kind=kind, session=session, payload=payload, user=user, now=now,
                                 idempotency_key=idempotency_key, asked_at=asked_at)  # fmt: skip
    raise refused  # recorded (committed above), nothing queued


COMMAND_WORD = {
    CommandKind.PAUSE_INFUSION: "Pause",
    CommandKind.RESUME_INFUSION: "Resume",
    CommandKind.STOP_INFUSION: "Stop",
}


def _asked_too_late(
    device: Device, session: InfusionSession | None, kind: CommandKind, asked_at: datetime, now: datetime
) -> PumpStreamError | None:
    """Why a person's command pressed at `asked_at` must not be carried out now, or None.

    Refused (review 46): one after whose press the pump reported a change (`_changed_since`: said first, it tells her
    most), or that reached the server more than ASKED_AT_MOST_S after the press (held up in a network that stalled:
    meanwhile she may have acted at the pump, which a screen not live did not show her); also one whose press is dated
    more than that after the server's clock (the page's estimate is off: its age cannot be judged).

    For Stop as for Pause and Resume (docs/clinical-rules.md, "A command held up in the network"): a late Stop is not
    the safe side, for it cannot be taken back (it ends the order: only a new order and a confirmation at the pump
    bring the infusion back, a vasopressor stopped meanwhile), while refused she is told at once, presses again or
    stops it at the pump."""
    word, pressed = COMMAND_WORD[kind], _clock(asked_at)
    changed = _changed_since(device, session, asked_at)  # first: what happened at the pump tells her most
    if changed is not None:
        return PumpStreamError(f"The pump changed after you pressed {word} (at {pressed}): {changed}. Nothing was sent "
                               "to the pump. Look at the pump, then press again", code="pump_changed")  # fmt: skip
    age_s = (now - asked_at).total_seconds()
    if age_s > ASKED_AT_MOST_S:
        return PumpStreamError(f"Your {word} reached the server {age_s:.0f} s after you pressed it (at {pressed}): the "
                               "network between this screen and the server is slow, and the pump may have changed "
                               "since, so nothing was sent to it. Look at the pump and act there: pressed again here, "
                               "it is refused the same way while the network stays this slow",
                               code="command_late")  # fmt: skip
    if -age_s > ASKED_AT_MOST_S:
        return PumpStreamError(f"Your {word} is dated {-age_s:.0f} s after the server's clock (this screen's clock is "
                               "off), so when you pressed it cannot be told: nothing was sent to the pump. Press "
                               "again", code="command_late")  # fmt: skip
    return None


AT_THE_PUMP = {"MANUAL_PAUSE": "paused", "MANUAL_RESUME": "resumed", "MANUAL_STOP": "stopped"}


def _changed_since(device: Device, session: InfusionSession | None, asked_at: datetime) -> str | None:
    """What the pump reported after the press that the screen could not have shown when she pressed, or None: a
    person acted at the pump's screen (its first `actions` report since: MANUAL_PAUSE, MANUAL_RESUME, ...), or the
    infusion she named moved (paused, resumed: `status_changed_at`, set when the pump's report is applied). Both are on
    the server's clock, as `asked_at` is (the page's estimate, which errs later, never earlier: a change a round trip
    after the press may be missed, never one before it taken for after)."""
    action = pump_action_after(device=device, after=asked_at)
    if action is not None:
        said = action.payload.get("action") if isinstance(action.payload, dict) else None
        done = f"{AT_THE_PUMP[said]} at its screen" if said in AT_THE_PUMP else f"{said or 'an action'} at its screen"
        return f"it reported the infusion {done} at {_clock(action.received_at)}"
    if session is not None and session.status_changed_at > asked_at:
        return f"it reported the infusion {session.status} at {_clock(session.status_changed_at)}"
    return None


def _clock(moment: datetime) -> str:
    """A moment as the pages show it: the time of day in the server's zone."""
    return f"{timezone.localtime(moment):%H:%M:%S}"


def _press_recorded(device: Device, kind: CommandKind, command: Command, idempotency_key: str) -> bool:
    """Whether this press (its key) was recorded already as joining `command`: its reply lost, it came again."""
    if not idempotency_key:
        return False
    return press_joined(device=device, kind=f"user.{kind.lower()}", since=command.created_at,
                        idempotency_key=idempotency_key[:64])  # fmt: skip


def _infusion_shown_check(device: Device, infusion_id: str | None) -> InfusionSession | None:
    """The session the person saw (`infusion_id`; None: the pump's own infusion, without an order), if it is still
    the one on the pump, else refused (`infusion_changed`, 409), as acknowledging an alert that changed since it was
    shown is. A pending order is not on the pump (never confirmed; a busy original firmware ignores its START): it
    never stands in for the infusion the pump runs. Naming it answers it (and `infusion_request` refuses it: a
    pending start is cancelled, not stopped)."""
    session = InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).first()
    on_pump = session if session is not None and session.status in SESSION_ON_PUMP_STATUSES else None
    if (on_pump.infusion_id if on_pump else None) == infusion_id:
        return on_pump
    if session is not None and session.infusion_id == infusion_id:
        return session  # the pending order she saw
    now = (
        f"infusion {on_pump.infusion_id} ({on_pump.drug or 'unnamed drug'}, {on_pump.status})"
        if on_pump
        else ("an infusion without an order" if device.pump_state in PUMP_INFUSING_STATES else "no infusion")
    )
    if session is not None and on_pump is None:
        now += f", and infusion {session.infusion_id} ({session.drug or 'unnamed drug'}) waits for its confirmation"
    shown = f"infusion {infusion_id}" if infusion_id else "the infusion without an order"
    raise PumpStreamError(f"The pump is no longer on {shown}: it now has {now}. Look at the pump's page again",
                          code="infusion_changed")  # fmt: skip


def _order_waiting(device: Device, session: InfusionSession | None) -> dict:
    """The pending order a STOP without an order leaves pending (audited with it), if any: `{}` otherwise."""
    if session is not None:
        return {}
    waiting = InfusionSession.objects.filter(device=device, status=SessionStatus.PENDING).first()
    return {"orderWaiting": waiting.infusion_id} if waiting else {}


def _infusing_without_order(device: Device) -> bool:
    """The pump reports infusing and no order is on it (a pending order is not: see `_infusion_shown_check`)."""
    on_pump = InfusionSession.objects.filter(device=device, status__in=SESSION_ON_PUMP_STATUSES).exists()
    return not on_pump and device.pump_state in PUMP_INFUSING_STATES


def infusion_record_end(*, infusion_id: str, user: Any, reason: str, now: datetime | None = None) -> InfusionSession:
    """End the record of an infusion the pump is not running (a ghost), by a permitted person; audited.

    Nothing is sent to the pump: this corrects the server's record (the pump restarted, was swapped, or its
    end was lost). The session ends `interrupted` with who and why; the pump is free for a new order. A pending
    order is refused (`session_pending`): it may still be on the pump's confirm screen, so it is cancelled instead
    (`infusion_cancel`, which clears that screen); so is an order the pump reports running now (`session_running`,
    `_held_now`) or paused (`session_paused`): it is no ghost, and stopped with Stop. Should the pump run an order whose
    record was ended after all, it runs with a high `confirmed_late` (`infusion_running_late`).
    """
    reason = text_kept(reason or "")
    if not reason:  # a zero-width space alone passes strip() and would be audited as a blank reason
        raise PumpStreamError("Say why the record is ended", code="invalid_command", field="reason")
    with transaction.atomic():
        session = InfusionSession.objects.select_related("device").filter(infusion_id=infusion_id).first()
        if session is None:
            raise PumpStreamError(f"No infusion {infusion_id}", code="not_found")
        device = device_lock(device_id=session.device.device_id)
        session.refresh_from_db()
        if session.status not in ACTIVE_SESSION_STATUSES:
            raise PumpStreamError(f"Infusion {infusion_id} has already ended ({session.status})", code="session_ended")
        if session.status == SessionStatus.PENDING:
            raise PumpStreamError(f"Infusion {infusion_id} waits for the pump's confirmation: cancel the start instead "
                                  f"({TOLD_TO_CLEAR})", code="session_pending")  # fmt: skip
        _refuse_if_held(device, session, now or timezone.now())
        who = user.get_username() if getattr(user, "is_authenticated", False) else "an administrator"
        event_record(device=device, session=session, kind="user.infusion_record_end", user=user,
                     payload={"infusionId": infusion_id, "reason": reason, "was": session.status})  # fmt: skip
        session_transition(device=device, session=session, to=SessionStatus.INTERRUPTED, user=user, now=now,
                           reason=f"{RECORD_ENDED_BY}{who}: {reason}")  # fmt: skip
    return session


def _refuse_if_held(device: Device, session: InfusionSession, now: datetime) -> None:
    """Refuse (`session_running`, `session_paused`) to end the record of an infusion the pump holds (`_held_now`),
    naming the way out should the pump not hold it after all (review 47, M2: a Stop the pump cannot carry out
    expires, and the record stayed for ever)."""
    held = _held_now(device, session, now)
    if held is None:
        return
    said, at, by_presence = held
    ago = max((now - at).total_seconds(), 0)
    if by_presence:  # only a new connection of the pump ends the hold: its newest word then is news
        way_out = ("If the pump shows no such infusion, reconnect it (switch it off and on): once it is online again "
                   "and does not report this infusion, its record can be ended")  # fmt: skip
    else:
        way_out = (f"If the pump shows no such infusion, its record can be ended once it has said nothing of it for "
                   f"{settings.PUMPSTREAM['HEARTBEAT_TIMEOUT_S']:g} s")  # fmt: skip
    raise PumpStreamError(f"Infusion {session.infusion_id} is no ghost: the pump reported it {said} {ago:.0f} s ago "
                          f"({timezone.localtime(at):%H:%M:%S}). Its record is ended only when the pump is not running "
                          f"it; to end the infusion, stop it (Stop on the pump's page, or at the pump). {way_out}",
                          code=f"session_{said}")  # fmt: skip


def _held_now(device: Device, session: InfusionSession, now: datetime) -> tuple[str, datetime, bool] | None:
    """What the pump last said of this infusion it holds, `running` or `paused`, when, and whether it holds by its
    presence alone (older than the heartbeat); None if its newest word says neither, names another infusion, is too
    old, or the pump is reported offline since.

    Its newest word is its latest progress of this infusion (`progress_on`) or its latest status about an infusion
    (not presence, `testing`, `degraded` or `issue`) naming this one or none (a legacy pump sends nothing else while
    paused), whichever the server received last: a `paused` status after a running progress is paused (review 46,
    L2: the refusal said "running" of a paused infusion). Ending the record would only be contradicted by the pump's
    next report (review 30, finding 6: accepted for a pump sending progress every second, `confirmed_late` at once;
    review 31, finding 2: the same for a pump paused at the bedside, at its resume).

    Too old: received more than HEARTBEAT_TIMEOUT_S ago: a pump silent that long, or offline, may be the ghost the
    action is for. But a `paused` of a pump online by its presence (`_held_by_presence`) holds however old: silence
    while paused is normal for it (the contract), and only its Last Will says it went (review 46, M1: accepted after
    15 s of a pause from the monitor, the pump shown free while it held the order paused, a high `confirmed_late` at
    its resume). So long as it was said on the pump's current connection, received after its latest `online`: a pump
    that connected again since (its Will came, or not, and it came back: a reboot under a reused `bootId` the server
    was not told of) and says nothing of the infusion may have forgotten it, and is judged by the heartbeat rule
    (review 47, M2: its record could never be ended, a Stop expiring at a pump with nothing to stop). A running
    infusion is reported every second, so a pump silent while running may be the ghost whatever its presence
    (review 30: the end is accepted; should the pump run on, `confirmed_late` says so)."""
    if session.status not in SESSION_ON_PUMP_STATUSES or device.presence == Presence.OFFLINE:
        return None
    since = now - timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])
    words = []  # (received, what it says, the infusion it names); a tie: the status, the pump's word for its state
    said = pump_status_latest(device=device, since=min(session.created_at, since), ignoring=INFORMATIONAL_STATUSES)
    if said is not None:
        words.append((said["receivedAt"], said["status"], _named(said)))
    progress, at = session.progress_on(device), device.latest_progress_at
    if progress is not None and at is not None:
        words.append((at, progress.get("status"), session.infusion_id))
    if not words:
        return None
    at, word, named = max(words, key=lambda heard: heard[0])
    if word not in HELD_REPORTS or named not in (None, session.infusion_id):
        return None
    held = "paused" if word == "paused" else "running"
    if at >= since:
        return held, at, False
    if held == "paused" and _held_by_presence(device, said_at=at):
        return held, at, True
    return None


def _held_by_presence(device: Device, *, said_at: datetime) -> bool:
    """A pump with presence that is online by it: it said `online` live and its Last Will has not come, so the broker
    holds the Will and would say it went; and what it said at `said_at` was said on that connection, received after
    its latest `online` (none recorded: its connection is older than any word kept). Not a pump whose presence is not
    vouched for (`unknown`: the broker that held its Will restarted, `pumps.pump_presence_unvouched`; its presence
    ticked or unticked since it last said `online`, `registration.pump_registration_save`), nor one without presence
    (no Will: only silence tells)."""
    if not (device.has_presence and device.presence == Presence.ONLINE):
        return False
    online_at = pump_online_latest(device=device)
    return online_at is None or said_at >= online_at


def _named(status: dict) -> str | None:
    """The infusion a stored status names (`status.report_infusion_id` of its payload)."""
    current = status.get("currentInfusion")
    return status.get("infusionId") or (current.get("infusionId") if isinstance(current, dict) else None) or None


def infusion_unverified_raise(*, session_pk: int, now: datetime) -> bool:
    """An order under way on a pump's evidence whose confirmation did not follow within its grace: its parameters
    are unverified (`parameters_unverified`, medium: check the pump's screen against the order). True if raised."""
    with transaction.atomic():
        session = InfusionSession.objects.select_related("device").filter(pk=session_pk).first()
        if session is None:
            return False
        device = device_lock(device_id=session.device.device_id)
        session.refresh_from_db()
        if (session.status not in SESSION_ON_PUMP_STATUSES
                or session.read_back not in (ReadBack.UNVERIFIED, ReadBack.MISMATCH)
                or session.unconfirmed_since is None or session.unverified_raised):  # fmt: skip
            return False  # confirmed meanwhile (its read-back decided), ended, or said already in this run
        session.unverified_raised = True
        session.save(update_fields=["unverified_raised"])
        readback_unverified_raise(device=device, session=session, now=now)
        return True
