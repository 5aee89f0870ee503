"""Alarms: raise (or count a repeat, or re-alert), clear, acknowledge. How a reported type becomes the alarm's key
(contract v1.1 "Alarms") is `alarm_keys.py`'s.
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.exceptions import PumpStreamError
from devices.models import Alarm, Device, InfusionSession
from devices.services.alarm_keys import alarm_is_clearing as alarm_is_clearing  # re-exported (below)
from devices.services.alarm_keys import alarm_is_literal_clearing as alarm_is_literal_clearing
from devices.services.alarm_keys import alarm_wording, device_alarm_key, server_alarm_key
from devices.services.alarm_keys import priority_from_severity as priority_from_severity
from devices.services.alarm_keys import types_cleared_by as types_cleared_by
from devices.services.changes import change_record, device_lock, event_record
from devices.services.silences import ward_silence_break
from devices.states import (
    ALARM_PRIORITY_RANK,
    ALARM_TRANSITIONS,
    FLOOD_COUNTS_HELD,
    AlarmPriority,
    AlarmSource,
    AlarmState,
    is_legal,
)
from protocol import events

# The `x as x` imports re-export the keys devices/services/pumps.py still imports from here (that module is being
# changed by others as this is written; it should import them from alarm_keys.py).

TYPE_SHOWN_MAX = 200
WORDINGS_KEPT = 32  # the wordings of one alarm's type remembered: one key holds only punctuation apart


def alarm_active(
    *, device: Device, key: str, error_code: str = "", session: InfusionSession | None = None
) -> Alarm | None:
    """The active alarm of this key (type key, errorCode, session or none) on the pump, if any."""
    found = Alarm.objects.filter(device=device, type=key, error_code=error_code, state=AlarmState.ACTIVE)
    found = found.filter(session=session) if session is not None else found.filter(session__isnull=True)
    return found.select_related("session", "acknowledged_by", "resolved_by").first()


def alarm_raise(
    *,
    device: Device,
    type: str,
    priority: AlarmPriority,
    source: AlarmSource,
    message: str = "",
    error_code: str = "",
    severity_reported: str = "",
    details: dict | None = None,
    session: InfusionSession | None = None,
    device_timestamp: Any = None,
    now: datetime | None = None,
    realert: bool = False,
) -> Alarm:
    """Raise the alarm of its key, count a repeat of the active one, or re-alert it; emits its events.

    `type` may be any text (shown as sent); the key is derived from it (a pump's: `device_alarm_key`; the
    server's must be one of `SERVER_ALARM_TYPES`, else ValueError). A repeat of an active alarm only counts,
    unless it comes at a higher priority, or the caller says it brings news nobody has seen (`realert`, as
    `alarm_flood_raise` does): then it alerts again, unacknowledged.
    """
    now = now or timezone.now()
    key = device_alarm_key(type) if source == AlarmSource.DEVICE else server_alarm_key(type)
    error_code = str(error_code)[:64]
    alarm = alarm_active(device=device, key=key, error_code=error_code, session=session)
    if alarm is None:
        alarm = Alarm.objects.create(
            device=device, session=session, type=key, type_reported=type[:TYPE_SHOWN_MAX] if type != key else "",
            error_code=error_code, priority=priority, severity_reported=severity_reported[:32],
            wordings=[alarm_wording(type)] if source == AlarmSource.DEVICE else [],
            message=message[:500], details=details or {}, source=source, raised_at=now, last_raised_at=now,
            alerted_at=now,
        )  # fmt: skip
        alerting = True
    else:
        reworded = source == AlarmSource.DEVICE and _reworded(alarm, type, key)
        alerting = _repeat(alarm, priority=priority, message=message, details=details, now=now,
                           realert=realert or reworded)  # fmt: skip
    event_record(
        device=device, session=session, kind=f"alarm.raised.{source}",
        payload={"alarmId": alarm.pk, "type": alarm.type_shown, "key": key, "errorCode": error_code,
                 "priority": alarm.priority, "message": message, "count": alarm.count, "alerts": alarm.alerts},
        received_at=now,
    )  # fmt: skip
    change_record(device=device, event=events.DEVICE_ALARM, body=payloads.alarm_body(alarm))
    if source == AlarmSource.DEVICE:
        change_record(
            device=device, event=events.DEVICE_ERROR, body=payloads.error_body(alarm, device_timestamp=device_timestamp)
        )
    if alerting:
        change_record(device=device, event=events.DEVICE_NOTIFICATION, body=payloads.notification_body(alarm))
        ward_silence_break(device=device, alarm=alarm, now=now)
    return alarm


def _repeat(
    alarm: Alarm, *, priority: AlarmPriority, message: str, details: dict | None, now: datetime, realert: bool
) -> bool:
    """Count a repeat of an active alarm; True when it re-alerts (it came at a higher priority, or `realert`)."""
    alarm.count += 1
    alarm.last_raised_at = now
    alarm.message = message[:500] or alarm.message
    alarm.details = details or alarm.details
    higher = ALARM_PRIORITY_RANK[priority] > ALARM_PRIORITY_RANK[alarm.priority]
    if higher:
        alarm.priority = priority
    if higher or realert:
        alarm_realert_mark(alarm, now=now)
    alarm.save()
    return higher or realert


def _reworded(alarm: Alarm, reported: str, key: str) -> bool:
    """Show a pump's type as sent now ("Flow < max" under the key of an active "Flow > max"); True when its wording
    was never shown since the alarm was raised: news. A pump flapping between two wordings re-alerts once for the
    second, not at every message (review 21: an acknowledgement held only until its next message)."""
    wording = alarm_wording(reported)
    if wording == alarm_wording(alarm.type_shown):
        return False
    alarm.type_reported = reported[:TYPE_SHOWN_MAX] if reported != key else ""
    shown = alarm.wordings or [alarm_wording(alarm.type_shown)]  # an alarm from before the list kept its first
    if wording in shown:
        return False
    alarm.wordings = [*shown, wording][-WORDINGS_KEPT:]
    return True


def alarm_realert_mark(alarm: Alarm, *, now: datetime) -> None:
    """Make an alarm alert again: unacknowledged, one more alert (the caller saves and emits)."""
    alarm.acknowledged_by = None
    alarm.acknowledged_at = None
    alarm.alerts += 1
    alarm.alerted_at = now
    alarm.escalation_level, alarm.escalated_at = 0, None  # escalation starts again from this alert


def alarm_clear(
    *,
    device: Device,
    types: list[str],
    error_code: str | None = None,
    reason: str = "",
    now: datetime | None = None,
    source: AlarmSource | None = None,
    session: InfusionSession | None = None,
    without_session: bool = False,
    ids: list[int] | None = None,
) -> list[Alarm]:
    """Clear the active alarms of these type keys (any errorCode, source and session unless given, or only those of
    no session with `without_session`; only these alarms with `ids`); idempotent."""
    now = now or timezone.now()
    active = Alarm.objects.filter(device=device, type__in=types, state=AlarmState.ACTIVE)
    if ids is not None:
        active = active.filter(pk__in=ids)
    if error_code is not None:
        active = active.filter(error_code=error_code)
    if source is not None:
        active = active.filter(source=source)
    if session is not None:
        active = active.filter(session=session)
    if without_session:
        active = active.filter(session__isnull=True)
    cleared = []
    for alarm in active.select_related("session", "acknowledged_by", "resolved_by"):
        alarm_transition(alarm=alarm, to=AlarmState.CLEARED, now=now)
        alarm.save(update_fields=["state", "cleared_at"])
        event_record(
            device=device, session=alarm.session, kind="alarm.cleared",
            payload={"alarmId": alarm.pk, "type": alarm.type, "reason": reason}, received_at=now,
        )  # fmt: skip
        change_record(device=device, event=events.DEVICE_ALARM, body=payloads.alarm_body(alarm))
        cleared.append(alarm)
    return cleared


def alarm_held_counts_fold(alarm: Alarm) -> bool:
    """Fold the repeats an alarm holds unsent (`FLOOD_COUNTS_HELD` in its details: an `alarm_flood`'s counts paced to
    the screens) into its count, text and last raised, for the change the caller records with it; False: none held.
    The caller saves it."""
    held = alarm.details.get(FLOOD_COUNTS_HELD)
    if not isinstance(held, dict):
        return False
    alarm.details = {key: value for key, value in alarm.details.items() if key != FLOOD_COUNTS_HELD}
    alarm.count += int(held["repeats"])
    alarm.message = held["message"]
    alarm.last_raised_at = datetime.fromisoformat(held["lastRaisedAt"])
    return True


def alarm_transition(*, alarm: Alarm, to: AlarmState, now: datetime) -> None:
    """Move an alarm to `to` by the one table of its legal transitions (the caller saves it and records the change).

    Raises `PumpStreamError(code="alarm_not_active")` for a move the table refuses (a cleared alarm stays cleared).
    """
    if not is_legal(ALARM_TRANSITIONS, alarm.state, to):
        raise PumpStreamError("This alarm is no longer active", code="alarm_not_active")
    alarm.state = to
    if to == AlarmState.CLEARED:
        alarm.cleared_at = now


def alarm_lock(*, alarm_id: int) -> tuple[Device, Alarm]:
    """The alarm's pump locked (inside the caller's transaction), and the alarm as it is now."""
    found = Alarm.objects.filter(pk=alarm_id).values_list("device__device_id", flat=True).first()
    if found is None:
        raise PumpStreamError("No such alarm", code="not_found")
    device = device_lock(device_id=found)
    return device, Alarm.objects.select_related("session", "acknowledged_by", "resolved_by").get(pk=alarm_id)


def alarm_seen_check(alarm: Alarm, *, alerts: int) -> None:
    """Refuse (`alarm_changed`) an act on an alarm that alerted again since the person saw alert `alerts`."""
    if alerts != alarm.alerts:
        shown = alarm.message or alarm.type
        raise PumpStreamError(f"This alarm alerted again ({alarm.priority}: {shown}) since it was shown: look at "
                              "it again", code="alarm_changed")  # fmt: skip


def alarm_acknowledge(*, alarm_id: int, user: Any, now: datetime | None = None, alerts: int | None = None) -> Alarm:
    """Record who acknowledged an alarm and when (seen by everyone watching); idempotent.

    `alerts`: the alert the person saw (the page sends it). If the alarm has alerted again since (a re-raise at a
    higher priority, a reminder), that newer alert is refused (`alarm_changed`): nobody acknowledges what they
    have not seen, and its sound and escalation go on.
    """
    now = now or timezone.now()
    with transaction.atomic():
        device, alarm = alarm_lock(alarm_id=alarm_id)
        if alarm.acknowledged_at is not None:
            return alarm
        if alerts is not None:
            alarm_seen_check(alarm, alerts=alerts)
        alarm.acknowledged_by = user
        alarm.acknowledged_at = now
        alarm.save(update_fields=["acknowledged_by", "acknowledged_at"])
        event_record(
            device=device, session=alarm.session, kind="user.alarm_acknowledged",
            payload={"alarmId": alarm.pk, "type": alarm.type}, user=user, received_at=now,
        )  # fmt: skip
        change_record(device=device, event=events.DEVICE_ALARM, body=payloads.alarm_body(alarm))
    return alarm
