"""The alarm the server raises when a pump floods it: what its budgets shed, summed up in one `alarm_flood`."""

from collections import Counter
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Device
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource, AlarmState

ALARM_FLOOD = "alarm_flood"
TYPES_NAMED = 10


def alarm_flood_raise(
    *, device_id: str, shed: dict[str, int], alarm_types: list[str] = (), now: datetime | None = None
) -> bool:
    """One high `alarm_flood` for messages shed over the pump's budgets (a repeat adds to its counts); False if unknown.

    Its details hold the messages shed per topic kind since it was raised and the first alarm types among
    them (its message names them, so an alarm shed in a burst is still named); the server clears it never by
    itself: a user resolves it once the pump has been checked (docs/clinical-rules.md).
    """
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return False
        device = device_lock(device_id=device_id)
        active = Alarm.objects.filter(device=device, type=ALARM_FLOOD, state=AlarmState.ACTIVE)
        earlier = active.values_list("details", flat=True).first() or {}
        total = Counter(earlier.get("shed", {})) + Counter(shed)
        types = list(dict.fromkeys([*earlier.get("alarmTypes", []), *alarm_types]))[:TYPES_NAMED]
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(total.items()))
        named = f" (alarms: {', '.join(types)})" if types else ""
        alarm_raise(
            device=device, type=ALARM_FLOOD, priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
            message=f"The pump sent far more messages than a pump does; not shown: {kinds}{named}. Check the pump.",
            details={"shed": dict(total), "alarmTypes": types}, now=now or timezone.now(),
        )  # fmt: skip
    return True
