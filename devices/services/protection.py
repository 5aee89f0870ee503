"""The alarm the server raises when a pump floods it: what its budgets shed, summed up in one `alarm_flood`."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from devices.models import Device
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource

ALARM_FLOOD = "alarm_flood"


def alarm_flood_raise(*, device_id: str, shed: dict[str, int], now: datetime | None = None) -> bool:
    """One high `alarm_flood` (a repeat only counts) for messages shed over the pump's budget; False if unknown."""
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return False
        total = sum(shed.values())
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(shed.items()))
        alarm_raise(
            device=device_lock(device_id=device_id), type=ALARM_FLOOD, priority=AlarmPriority.HIGH,
            source=AlarmSource.SERVER,
            message=f"The pump sent far more messages than a pump does; {total} not shown ({kinds}): check the pump.",
            details={"shed": shed}, now=now or timezone.now(),
        )  # fmt: skip
    return True
