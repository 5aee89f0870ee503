"""Selectors of the domain gauges on `/metrics`: pumps by connectivity, active alarms, commands by state."""

from collections import Counter
from datetime import datetime

from django.db.models import Count

from devices.models import Alarm, Command, Device
from devices.states import AlarmState


def pumps_by_connectivity(*, now: datetime) -> Counter:
    """How many pumps are online, stale, offline or never heard (derived as `Device.connectivity` derives it)."""
    fields = ("last_seen_at", "presence", "has_presence")
    return Counter(Device(**row).connectivity(now=now) for row in Device.objects.values(*fields))


def alarms_active_by_priority() -> dict[str, int]:
    """How many alarms are active, by priority."""
    active = Alarm.objects.filter(state=AlarmState.ACTIVE)
    return dict(active.values_list("priority").annotate(n=Count("id")).order_by())


def alarms_active_of_type(alarm_type: str) -> int:
    """How many alarms of this type are active."""
    return Alarm.objects.filter(state=AlarmState.ACTIVE, type=alarm_type).count()


def commands_by_state() -> dict[str, int]:
    """How many commands are in each state."""
    return dict(Command.objects.values_list("state").annotate(n=Count("id")).order_by())
