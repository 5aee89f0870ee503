"""Alarms: raise (or count a repeat), clear, acknowledge."""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Alarm, Device, InfusionSession
from devices.services.changes import change_record, device_lock, event_record
from devices.states import AlarmPriority, AlarmSource, AlarmState
from realtime import events

SEVERITY_PRIORITY = {
    "high": AlarmPriority.HIGH,
    "critical": AlarmPriority.HIGH,
    "medium": AlarmPriority.MEDIUM,
    "warning": AlarmPriority.MEDIUM,
    "low": AlarmPriority.LOW,
    "info": AlarmPriority.LOW,
}
CLEARED_SUFFIX = "_cleared"


def priority_from_severity(severity: Any) -> AlarmPriority:
    """The contract's mapping, case-insensitive; missing or unknown severity is high."""
    if isinstance(severity, str):
        return SEVERITY_PRIORITY.get(severity.strip().lower(), AlarmPriority.HIGH)
    return AlarmPriority.HIGH


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
) -> Alarm:
    """Raise the alarm for (type, errorCode), or count a repeat of the active one; emits its events."""
    now = now or timezone.now()
    alarm = Alarm.objects.filter(device=device, type=type, error_code=error_code, state=AlarmState.ACTIVE).first()
    if alarm is None:
        alarm = Alarm.objects.create(
            device=device, session=session, type=type, error_code=error_code, priority=priority,
            severity_reported=severity_reported[:32], message=message[:500], details=details or {},
            source=source, raised_at=now, last_raised_at=now,
        )  # fmt: skip
        is_new = True
    else:
        alarm.count += 1
        alarm.last_raised_at = now
        alarm.message = message[:500] or alarm.message
        alarm.details = details or alarm.details
        alarm.priority = priority
        alarm.save(update_fields=["count", "last_raised_at", "message", "details", "priority"])
        is_new = False
    event_record(
        device=device, session=session, kind=f"alarm.raised.{source}",
        payload={"alarmId": alarm.pk, "type": type, "errorCode": error_code, "priority": priority,
                 "message": message, "count": alarm.count},
        received_at=now,
    )  # fmt: skip
    change_record(device=device, event=events.DEVICE_ALARM, body=events.alarm_body(alarm))
    if source == AlarmSource.DEVICE:
        change_record(
            device=device, event=events.DEVICE_ERROR, body=events.error_body(alarm, device_timestamp=device_timestamp)
        )
    if is_new:
        change_record(device=device, event=events.DEVICE_NOTIFICATION, body=events.notification_body(alarm))
    return alarm


def alarm_clear(
    *, device: Device, types: list[str], error_code: str | None = None, reason: str = "", now: datetime | None = None
) -> list[Alarm]:
    """Clear the active alarms of these types (any errorCode unless given); idempotent."""
    now = now or timezone.now()
    active = Alarm.objects.filter(device=device, type__in=types, state=AlarmState.ACTIVE)
    if error_code is not None:
        active = active.filter(error_code=error_code)
    cleared = []
    for alarm in active.select_related("session", "acknowledged_by"):
        alarm.state = AlarmState.CLEARED
        alarm.cleared_at = now
        alarm.save(update_fields=["state", "cleared_at"])
        event_record(
            device=device, session=alarm.session, kind="alarm.cleared",
            payload={"alarmId": alarm.pk, "type": alarm.type, "reason": reason}, received_at=now,
        )  # fmt: skip
        change_record(device=device, event=events.DEVICE_ALARM, body=events.alarm_body(alarm))
        cleared.append(alarm)
    return cleared


def types_cleared_by(report_type: str) -> list[str]:
    """`X_cleared` clears `X` and `X_detected` (`bubble_cleared` clears `bubble_detected`)."""
    base = report_type.removesuffix(CLEARED_SUFFIX)
    return [base, f"{base}_detected"]


def alarm_acknowledge(*, alarm_id: int, user: Any, now: datetime | None = None) -> Alarm:
    """Record who acknowledged an alarm and when (seen by everyone watching); idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        alarm = Alarm.objects.select_related("device").filter(pk=alarm_id).first()
        if alarm is None:
            raise PumpStreamError("No such alarm", code="not_found")
        device = device_lock(device_id=alarm.device.device_id)
        if alarm.acknowledged_at is not None:
            return alarm
        alarm.acknowledged_by = user
        alarm.acknowledged_at = now
        alarm.save(update_fields=["acknowledged_by", "acknowledged_at"])
        event_record(
            device=device, session=alarm.session, kind="user.alarm_acknowledged",
            payload={"alarmId": alarm.pk, "type": alarm.type}, user=user, received_at=now,
        )  # fmt: skip
        change_record(device=device, event=events.DEVICE_ALARM, body=events.alarm_body(alarm))
    return alarm
