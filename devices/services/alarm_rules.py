"""The server's own alarm rules: unreadable alarms, clearing at a session's end, reminders, resolving by hand.

Every server alarm type's clearing rule is written in `docs/clinical-rules.md` ("Alarms").
"""

import logging
from collections.abc import Callable, Collection
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.exceptions import PumpStreamError
from devices.housekeeping_selectors import alarms_acknowledged_active_any, alarms_reminder_page
from devices.models import Alarm, Device, InfusionSession
from devices.services.alarms import (
    alarm_active,
    alarm_clear,
    alarm_held_counts_fold,
    alarm_lock,
    alarm_raise,
    alarm_realert_mark,
    alarm_seen_check,
    alarm_transition,
)
from devices.services.changes import change_record, device_lock, event_record
from devices.services.commands import command_not_carried_out_clear
from devices.services.paused_runs_again import paused_run_answer
from devices.services.records import text_storable
from devices.services.restart_commands import commands_lost_recall
from devices.services.rows import RowRun, row_run_plain
from devices.services.silences import ward_silence_break
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    SESSION_ENDED_STATUSES,
    SESSION_ON_PUMP_STATUSES,
    UNORDERED_ALARMS,
    AlarmPriority,
    AlarmResolveReason,
    AlarmSource,
    AlarmState,
    SessionStatus,
)
from protocol import events, topics
from protocol.visible_text import text_kept

logger = logging.getLogger(__name__)

UNREADABLE_ALARM = "unreadable_alarm"
UNREADABLE_REPORT = "unreadable_report"  # a completion, action, start answer or status that could not be read
REPORTED_ACTION = {"MANUAL_STOP": "a Stop at its own screen", "MANUAL_PAUSE": "a Pause at its own screen",
                   "MANUAL_RESUME": "a Resume at its own screen"}  # fmt: skip
UNREAD_ACTION = "an action at its own screen"
UNREAD_STATE, UNREAD_ANSWER = "its state", "its answer to a start"
REPORTED_ANSWER = {True: "that it accepted a start", False: "that it rejected a start"}
REPORTED_STATUS = {"stopped": "that it stopped", "completed": "that the infusion completed", "paused": "that it paused",
                   "running": "that it is running", "started": "that it started", "idle": "that it is idle",
                   "healthy": "that it is idle", "rejected": "that it rejected a start",
                   "received_start_command": "that it received a start"}  # fmt: skip
STATUS_OF_A_START = ("rejected", "received_start_command")  # about the order waiting, not yet on the pump
DEVICE_DEGRADED = "device_degraded"
# Server alarms about one session's infusion: they clear when that session ends (and no pump clears them).
SESSION_SERVER_ALARMS = ("parameter_mismatch", "parameters_unverified", "confirmed_late", "communication_lost")
# ... and the one that also clears when the session pauses: a paused pump is expected to fall silent.
PAUSE_CLEARS = ("communication_lost",)
NOT_CARRIED_OUT_MOOT = (SessionStatus.PAUSED, *SESSION_ENDED_STATUSES)  # a lost STOP/PAUSE needs no one then
NOTE_REQUIRED = (AlarmResolveReason.OTHER, AlarmResolveReason.FALSE_ALARM)
PER_TICK = 100


def alarm_unreadable_raise(
    *, device_id: str, reason: str, detail: str = "", excerpt: str = "", digest: str = "", now: datetime | None = None
) -> Alarm | None:
    """A high `unreadable_alarm` for a registered pump whose `error` message could not be read (v1.1).

    A repeat while active counts; one whose bytes differ (`digest`, of the whole payload; else its excerpt) may be
    another alarm, an occlusion after a low battery: news (`_unreadable_raise`, reviews 23, 24). None when no pump is
    registered with this id. The message itself is dead-lettered by the caller.
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return None
        device = device_lock(device_id=device_id)
        details = {"reason": reason, "detail": text_storable(detail[:300]), "excerpt": text_storable(excerpt[:300])}
        details |= {"digest": digest} if digest else {}
        return _unreadable_raise(
            device, type=UNREADABLE_ALARM, session=device.active_session, details=details, now=now,
            message=f"The pump sent an alarm that could not be read ({reason}): check the pump's screen",
            news=partial(_excerpt_differs, details=details),
        )  # fmt: skip


def _unreadable_raise(
    device: Device, *, type: str, session: InfusionSession | None, message: str, details: dict, now: datetime,
    news: Callable[[Alarm], bool],
) -> Alarm:  # fmt: skip
    """Raise a high `unreadable_alarm`/`unreadable_report`, or count it on the active one of its key; a repeat that
    `news` tells from the active one (it may say something else) re-alerts it once acknowledged, and breaks the ward's
    silence while it still sounds (review 23: an occlusion refused as a low battery before had only counted on the
    acknowledged alarm: no sound, no escalation). A repeat of the same bytes is no news. Bounded by the alarm budget."""
    active = alarm_active(device=device, key=type, session=session)
    differs = active is not None and news(active)
    acknowledged = active is not None and active.acknowledged_at is not None
    alarm = alarm_raise(device=device, type=type, priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
                        session=session, now=now, details=details, message=message,
                        realert=differs and acknowledged)  # fmt: skip
    if differs and not acknowledged:
        ward_silence_break(device=device, alarm=alarm, now=now)
    return alarm


def degraded_unreadable_raise(
    *, device_id: str, status: str, reason: str, detail: str = "", now: datetime | None = None
) -> Alarm | None:
    """`device_degraded` for a registered pump whose `degraded`/`issue` status was refused for another field (review
    15: the pump says it needs attention; a firmware broken in one field is the likeliest to say so).

    Raised as an accepted status raises it (medium, the active session's, once: while it is active nothing more), with
    the refusal in its text and details; it clears as that one does. None when no pump is registered with this id or
    it was active already. The status itself is dead-lettered by the caller.
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return None
        device = device_lock(device_id=device_id)
        if device.alarms.filter(type=DEVICE_DEGRADED, error_code="", state=AlarmState.ACTIVE).exists():
            return None
        return alarm_raise(
            device=device, type=DEVICE_DEGRADED, priority=AlarmPriority.MEDIUM, source=AlarmSource.SERVER,
            session=device.active_session, now=now, details={"reason": reason, "detail": text_storable(detail[:300])},
            message=f"The pump reports {status}; the rest of its report could not be read ({reason}): check the pump",
        )  # fmt: skip


def report_unreadable_raise(
    *, device_id: str, kind: str, said: dict, reason: str, detail: str = "", excerpt: str = "", digest: str = "",
    now: datetime | None = None,
) -> Alarm | None:  # fmt: skip
    """A high `unreadable_report` for a registered pump whose `completion`, `actions`, `infusion` or `status` report
    could not be read, even in part (review 19): the screen may no longer show what the pump does with its infusion.

    Tied to the infusion the report may be about: for an answer to a start (a status saying `rejected` or
    `received_start_command` too), the pump's active session (the order waiting for it); for a completion, an action
    at the pump or another status, the session on the pump (running or paused), else none; a status with no such
    session raises nothing (a pump's frequent heartbeat, with no infusion the screen could show wrongly). Its text
    says what the pump reported as far as it can be told (`said`: the decoded payload, if any, read only for the
    wording). A repeat while active counts; one that says something else (a Stop after a Pause), or whose bytes differ
    when the action or answer it reports cannot be told (not a status: a heartbeat's bytes differ each time), is news
    (`_unreadable_raise`, review 23). None when no pump is registered with this id, or for a status with no such
    session. The message itself is dead-lettered by the caller.
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return None
        device = device_lock(device_id=device_id)
        start_answer = kind == topics.INFUSION or (kind == topics.STATUS and said.get("status") in STATUS_OF_A_START)
        statuses = ACTIVE_SESSION_STATUSES if start_answer else SESSION_ON_PUMP_STATUSES
        session = InfusionSession.objects.filter(device=device, status__in=statuses).first()
        if session is None and kind == topics.STATUS:
            return None  # no infusion for the screen to show wrongly: the dead letter is enough (a pump's heartbeat)
        reported = _reported(kind, said)
        details = {"topic": kind, "reason": reason, "detail": text_storable(detail[:300]),
                   "excerpt": text_storable(excerpt[:300])}  # fmt: skip
        details |= {"digest": digest} if digest else {}
        message = (f"The pump reported {reported} in a message that could not be read ({reason}): the screen may not "
                   "show what the pump does; check the pump")  # fmt: skip
        # Bytes that differ are news only for a report of an event whose word could not be read: a status is the pump's
        # heartbeat, its bytes (uptime, seq) differ at each one, and it says what it says
        untold = reported in (UNREAD_ACTION, UNREAD_ANSWER)
        return _unreadable_raise(
            device, type=UNREADABLE_REPORT, session=session, details=details, message=message, now=now,
            news=lambda active: active.message != message or (untold and _excerpt_differs(active, details)),
        )  # fmt: skip


def _excerpt_differs(active: Alarm, details: dict) -> bool:
    """Whether a repeat's bytes differ from the active alarm's: by the digest of the whole payload when both have one
    (two payloads may share their first 300 bytes, a firmware's device block, and differ in their type: review 24),
    else by the excerpt."""
    if active.details.get("digest") and details.get("digest"):
        return active.details["digest"] != details["digest"]
    return active.details.get("excerpt") != details["excerpt"]


def _reported(kind: str, said: dict) -> str:
    """What an unreadable report says the pump did, as far as its readable fields tell (else what such reports say)."""
    if kind == topics.COMPLETION:
        return "the end of an infusion"
    if kind == topics.STATUS:
        status = said.get("status")
        return REPORTED_STATUS.get(status, UNREAD_STATE) if isinstance(status, str) else UNREAD_STATE
    if kind == topics.ACTIONS:
        action = said.get("action")
        return REPORTED_ACTION.get(action, UNREAD_ACTION) if isinstance(action, str) else UNREAD_ACTION
    confirmed = said.get("confirmed")
    return REPORTED_ANSWER[confirmed] if isinstance(confirmed, bool) else UNREAD_ANSWER


def alarms_session_clear(*, device: Device, session: InfusionSession, now: datetime | None = None) -> list[Alarm]:
    """Clear the session's server alarms its new status ends: all of them when it ended, the silence one on pause."""
    if session.status in SESSION_ENDED_STATUSES:
        types, reason = SESSION_SERVER_ALARMS, f"infusion {session.status}"
    elif session.status == SessionStatus.PAUSED:
        types, reason = PAUSE_CLEARS, "infusion paused"
    else:
        return []
    return alarm_clear(device=device, types=list(types), source=AlarmSource.SERVER, session=session, reason=reason,
                       now=now)  # fmt: skip


def alarms_session_settle(
    *, device: Device, session: InfusionSession, reason: str, now: datetime, previous: SessionStatus | None = None
) -> None:
    """The server alarms a session's new state answers (`session_transition`, from `previous`): its own server alarms
    it ends (`alarms_session_clear`); the pump reporting an order running or paused on it ends any silence of the pump
    (a silent running session's clock starts again from this move); an order that never reached the pump ending
    (cancelled, timed out, rejected) ends none: the pump is as silent as before, infusing without it; a lost
    STOP/PAUSE of this session (only) is moot once it is paused or ended, and a lost Stop is recalled when it runs
    again from paused (`commands_lost_recall`: a pause made it moot, never carried it out; review 25, finding 2); an
    order running explains (and ended) the pump's own infusion, and a lost STOP of it; any move of the session an
    unreadable report was tied to shows its state again (`unreadable_report`)."""
    to = session.status
    alarms_session_clear(device=device, session=session, now=now)
    alarm_clear(device=device, types=[UNREADABLE_REPORT], source=AlarmSource.SERVER, session=session,
                reason=f"the infusion is {to}: {reason}", now=now)  # fmt: skip
    if to in SESSION_ON_PUMP_STATUSES:
        alarm_clear(device=device, types=["communication_lost"], reason=f"the infusion is {to}", now=now)
    if to in NOT_CARRIED_OUT_MOOT:
        command_not_carried_out_clear(device=device, session=session, reason=f"the infusion is {to}: {reason}", now=now)
    if to == SessionStatus.RUNNING:
        alarm_clear(device=device, types=list(UNORDERED_ALARMS), reason="an order is running", now=now)
        command_not_carried_out_clear(device=device, session=None, reason="an order is running", now=now)
    if to == SessionStatus.RUNNING and previous == SessionStatus.PAUSED:
        commands_lost_recall(device=device, session=session, why=reason, now=now)
        paused_run_answer(device=device, session=session, now=now)


def alarm_resolve(
    *, alarm_id: int, user: Any, reason: str, alerts: int, note: str = "", now: datetime | None = None
) -> Alarm:
    """A permitted user clears an active alarm by hand, with a coded reason and free text; audited, seen by all.

    `alerts`: the alert the person saw (the page, or the admin's list, shows it). If the alarm has alerted again
    since (re-raised at a higher priority, a reminder), it is refused (`alarm_changed`), as acknowledge is: nobody
    clears an alert, its sound and its escalation, that they have not seen.
    """
    if reason not in AlarmResolveReason.values:
        raise PumpStreamError("Choose a reason", code="invalid_reason", field="reason")
    note = text_kept(note)[:500]
    if reason in NOTE_REQUIRED and not note:
        raise PumpStreamError("Explain the reason in the note", code="invalid_reason", field="note")
    now = now or timezone.now()
    with transaction.atomic():
        device, alarm = alarm_lock(alarm_id=alarm_id)
        alarm_transition(alarm=alarm, to=AlarmState.CLEARED, now=now)
        alarm_seen_check(alarm, alerts=alerts)
        alarm_held_counts_fold(alarm)  # its last counts go out with its end (the housekeeping sends active ones')
        alarm.resolved_by, alarm.resolved_at, alarm.resolved_reason, alarm.resolved_note = user, now, reason, note
        alarm.save()
        event_record(
            device=device, session=alarm.session, kind="user.alarm_resolved", user=user, received_at=now,
            payload={"alarmId": alarm.pk, "type": alarm.type, "reason": reason, "note": note},
        )  # fmt: skip
        change_record(device=device, event=events.DEVICE_ALARM, body=payloads.alarm_body(alarm))
    logger.info("alarm resolved", extra={"device_id": device.device_id, "reason": reason})
    return alarm


def alarms_remind(
    *, now: datetime | None = None, limit: int = PER_TICK, exclude: Collection[int] = (), run: RowRun = row_run_plain
) -> int:
    """Re-alert active alarms still active past the reminder interval after acknowledgement, the oldest first, at
    most `limit` (the bridge's housekeeping page) but those in `exclude`, each through `run` (the bridge guards each
    alarm: one that cannot be reminded stops no other); returns how many."""
    now = now or timezone.now()
    if not alarms_acknowledged_active_any():  # none acknowledged and still active: one plain query a tick
        return 0
    due = alarms_reminder_page(by=now, limit=limit, exclude=exclude)
    return sum(run("reminders", alarm_id, partial(_remind, alarm_id, device_id, now)) for alarm_id, device_id in due)


def _remind(alarm_id: int, device_id: str, now: datetime) -> int:
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        alarm = Alarm.objects.select_related("session").get(pk=alarm_id)
        if alarm.state != AlarmState.ACTIVE or alarm.acknowledged_at is None:
            return 0
        acknowledged_at = alarm.acknowledged_at
        alarm_realert_mark(alarm, now=now)
        alarm.save()
        event_record(
            device=device, session=alarm.session, kind="alarm.reminded", received_at=now,
            payload={"alarmId": alarm.pk, "type": alarm.type, "acknowledgedAt": acknowledged_at.isoformat()},
        )  # fmt: skip
        change_record(device=device, event=events.DEVICE_ALARM, body=payloads.alarm_body(alarm))
        change_record(device=device, event=events.DEVICE_NOTIFICATION, body=payloads.notification_body(alarm))
        ward_silence_break(device=device, alarm=alarm, now=now)
    return 1
