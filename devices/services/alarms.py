"""Alarms: raise (or count a repeat, or re-alert), clear, acknowledge; the alarm key (contract v1.1 "Alarms").

The server's alarm types' keys are the server's alone: a pump's alarm named alike (`Communication Lost`) is keyed
`device_communication_lost`, so it never shares a row with the server's, which the server's checks and clears
(by type key) therefore never meet, and no pump's `X_cleared` can reach.
"""

import re
import unicodedata
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.exceptions import PumpStreamError
from devices.models import Alarm, Device, InfusionSession
from devices.services.changes import change_record, device_lock, event_record
from devices.services.silences import ward_silence_break
from devices.states import (
    ALARM_PRIORITY_RANK,
    ALARM_TRANSITIONS,
    SERVER_ALARM_TYPES,
    AlarmPriority,
    AlarmSource,
    AlarmState,
    is_legal,
)
from protocol import events

SEVERITY_PRIORITY = {
    "high": AlarmPriority.HIGH,
    "critical": AlarmPriority.HIGH,
    "medium": AlarmPriority.MEDIUM,
    "warning": AlarmPriority.MEDIUM,
    "low": AlarmPriority.LOW,
    "info": AlarmPriority.LOW,
}
CLEARED_SUFFIX = "_cleared"
DEFAULT_TYPE = "device_error"
DEVICE_KEY_PREFIX = "device_"  # before a pump's type key that is a server alarm type's
TYPE_KEY_MAX = 64
TYPE_SHOWN_MAX = 200
NOT_KEY_CHARS = re.compile(r"[^a-z0-9_]")
LITERAL_CLEARING = re.compile(r"\S+_cleared", re.IGNORECASE)  # the contract's `X_cleared` as sent (after NFKC)
NOT_WORDING = re.compile(r"[\s_\-]+")  # what two spellings of one condition may differ in besides case


def priority_from_severity(severity: Any) -> AlarmPriority:
    """The contract's mapping, case-insensitive; missing or unknown severity is high."""
    if isinstance(severity, str):
        return SEVERITY_PRIORITY.get(severity.strip().lower(), AlarmPriority.HIGH)
    return AlarmPriority.HIGH


def alarm_type_key(reported: str) -> str:
    """The type's key: lower-cased, every character but `a-z 0-9 _` turned into `_`, at most 64 (v1.1).

    A type in another script keeps its letters, digits, marks and symbols (NFKC, case-folded): by the contract's rule
    alone "Окклюзия" and "Пузырьки" (occlusion, air bubbles) were both `________`, and "Druck ↑" and "Druck ↓" (too
    high, too low) both `druck__`: one alarm, the second counted as a repeat and never announced (reviews 12, 13).
    An ASCII type's key is the contract's. A clearing's key is its base's (cut to 64) and `_cleared`, so that
    `X_cleared` still pairs with `X` however long `X` is, or grew under case folding ("ß" is "ss").
    """
    key = _key_uncut(reported)
    if key.endswith(CLEARED_SUFFIX):
        return f"{key.removesuffix(CLEARED_SUFFIX)[:TYPE_KEY_MAX]}{CLEARED_SUFFIX}"
    return key[:TYPE_KEY_MAX] or DEFAULT_TYPE


def alarm_is_clearing(reported: str) -> bool:
    """Whether a pump's `error` type is a clearing (`X_cleared`), judged before any cut."""
    return _key_uncut(reported).endswith(CLEARED_SUFFIX)


def alarm_is_literal_clearing(reported: str) -> bool:
    """Whether a pump's type is literally the contract's `X_cleared` (no space, `_cleared` as sent, any case, NFKC).

    Only such a type is a clearing even when it clears nothing; any other type whose key ends in `_cleared`
    ("Occlusion not cleared", "Line-not-cleared") is a clearing only if it clears an active alarm, else the alarm it
    says it is (when in doubt, alarm: review 15).
    """
    return LITERAL_CLEARING.fullmatch(unicodedata.normalize("NFKC", reported)) is not None


def _key_uncut(reported: str) -> str:
    if not reported.isascii():
        reported = unicodedata.normalize("NFKC", reported)  # full-width "ＯＣＣＬＵＳＩＯＮ" is "OCCLUSION"
    if reported.isascii():
        return NOT_KEY_CHARS.sub("_", reported.lower())
    return "".join(c if c == "_" or c.isalnum() or unicodedata.category(c)[0] in "MS" else "_"
                   for c in reported.casefold())  # fmt: skip


def device_alarm_key(reported: str) -> str:
    """A pump's alarm key: its type key, or `device_<key>` when that is a server alarm type's (never one row)."""
    return _device_key(alarm_type_key(reported))


def _device_key(key: str) -> str:
    return f"{DEVICE_KEY_PREFIX}{key}" if key in SERVER_ALARM_TYPES else key


def _server_key(type: str) -> str:
    key = alarm_type_key(type)
    if key not in SERVER_ALARM_TYPES:
        raise ValueError(f"server alarm type {key!r} is not in SERVER_ALARM_TYPES (devices/states.py): add it there")
    return key


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
    key = device_alarm_key(type) if source == AlarmSource.DEVICE else _server_key(type)
    error_code = str(error_code)[:64]
    alarm = alarm_active(device=device, key=key, error_code=error_code, session=session)
    if alarm is None:
        alarm = Alarm.objects.create(
            device=device, session=session, type=key, type_reported=type[:TYPE_SHOWN_MAX] if type != key else "",
            error_code=error_code, priority=priority, severity_reported=severity_reported[:32],
            message=message[:500], details=details or {}, source=source, raised_at=now, last_raised_at=now,
            alerted_at=now,
        )  # fmt: skip
        alerting = True
    else:
        reworded = source == AlarmSource.DEVICE and _wording(type) != _wording(alarm.type_shown)
        if reworded:  # "Flow < max" under the key of an active "Flow > max": the pump says something else now
            alarm.type_reported = type[:TYPE_SHOWN_MAX] if type != key else ""
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


def _wording(reported: str) -> str:
    """What a pump's type says, for telling a repeat from another condition under the same key: the contract's key
    turns every character but `a-z 0-9 _` into `_`, so "Flow > max" and "Flow < max" (too high, too low) share one;
    case, spaces, `_` and `-` are spelling ("Occlusion detected", "OCCLUSION_DETECTED"), any other character is news."""
    return NOT_WORDING.sub("", unicodedata.normalize("NFKC", reported).casefold())


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
) -> list[Alarm]:
    """Clear the active alarms of these type keys (any errorCode, source and session unless given, or only those of
    no session with `without_session`); idempotent."""
    now = now or timezone.now()
    active = Alarm.objects.filter(device=device, type__in=types, state=AlarmState.ACTIVE)
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


def alarm_transition(*, alarm: Alarm, to: AlarmState, now: datetime) -> None:
    """Move an alarm to `to` by the one table of its legal transitions (the caller saves it and records the change).

    Raises `PumpStreamError(code="alarm_not_active")` for a move the table refuses (a cleared alarm stays cleared).
    """
    if not is_legal(ALARM_TRANSITIONS, alarm.state, to):
        raise PumpStreamError("This alarm is no longer active", code="alarm_not_active")
    alarm.state = to
    if to == AlarmState.CLEARED:
        alarm.cleared_at = now


def types_cleared_by(report_type: str) -> list[str]:
    """`X_cleared` clears `X` and `X_detected` (`bubble_cleared` clears `bubble_detected`), as a pump's keys.

    `communication_lost_cleared` names the pump's own `device_communication_lost`, never the server's alarm.
    """
    base = _key_uncut(report_type).removesuffix(CLEARED_SUFFIX)
    return [_device_key(base[:TYPE_KEY_MAX]), _device_key(f"{base}_detected"[:TYPE_KEY_MAX])]


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
