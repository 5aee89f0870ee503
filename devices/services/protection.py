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


def alarm_flood_raise(*, device_id: str, shed: dict[str, int], now: datetime | None = None) -> bool:
    """One high `alarm_flood` for messages shed over the pump's budgets (a repeat adds to its counts); False if unknown.

    Its details hold the messages shed per topic kind since it was raised; the server clears it never by
    itself: a user resolves it once the pump has been checked (docs/clinical-rules.md).
    """
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return False
        device = device_lock(device_id=device_id)
        active = Alarm.objects.filter(device=device, type=ALARM_FLOOD, state=AlarmState.ACTIVE)
        earlier = (active.values_list("details", flat=True).first() or {}).get("shed", {})
        total = Counter(earlier) + Counter(shed)
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(total.items()))
        alarm_raise(
            device=device, type=ALARM_FLOOD, priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
            message=f"The pump sent far more messages than a pump does; not shown: {kinds}. Check the pump.",
            details={"shed": dict(total)}, now=now or timezone.now(),
        )  # fmt: skip
    return True
