"""Domain gauges computed from the database when `/metrics` is scraped (pumps, alarms, commands)."""

from collections import Counter

from django.db.models import Count
from django.utils import timezone
from prometheus_client import Gauge

from devices.models import Alarm, Command, Device
from devices.states import AlarmPriority, AlarmState, CommandState, Connectivity

PUMPS_BY_CONNECTIVITY = Gauge("pumpstream_pumps", "Registered pumps by connectivity", ["connectivity"])
ACTIVE_ALARMS = Gauge("pumpstream_active_alarms", "Active alarms by priority", ["priority"])
COMMANDS_BY_STATE = Gauge("pumpstream_commands", "Commands by state", ["state"])


def refresh_domain_gauges() -> None:
    """Recompute the gauges (connectivity is derived, so it is computed here, not stored)."""
    now = timezone.now()
    fields = ("last_seen_at", "presence", "has_presence")
    connectivity = Counter(Device(**row).connectivity(now=now) for row in Device.objects.values(*fields))
    for state in Connectivity.values:
        PUMPS_BY_CONNECTIVITY.labels(state).set(connectivity.get(state, 0))
    alarms = dict(
        Alarm.objects.filter(state=AlarmState.ACTIVE).values_list("priority").annotate(n=Count("id")).order_by()
    )
    for priority in AlarmPriority.values:
        ACTIVE_ALARMS.labels(priority).set(alarms.get(priority, 0))
    commands = dict(Command.objects.values_list("state").annotate(n=Count("id")).order_by())
    for state in CommandState.values:
        COMMANDS_BY_STATE.labels(state).set(commands.get(state, 0))
