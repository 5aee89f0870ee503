"""Selectors of operations: the domain gauges on `/metrics` (pumps by connectivity, active alarms, commands by state)
and the summary the staff page `/ops/` shows."""

from collections import Counter
from datetime import datetime

from django.db.models import Count
from django.utils import timezone

from devices.models import Alarm, BridgeStatus, Command, DeadLetter, Device, EscalationDelivery, InfusionSession
from devices.selectors import BRIDGES_READ, bridge_status, heartbeat_fresh, heartbeats_fresh, latest_bridge
from devices.states import ACTIVE_SESSION_STATUSES, AlarmState, Connectivity

QUIET = "quiet"  # `pumps_by_reporting`: stale on screen, silent by design


def pumps_by_connectivity(*, now: datetime) -> Counter:
    """How many pumps are online, stale, offline or never heard (derived as `Device.connectivity` derives it)."""
    fields = ("last_seen_at", "presence", "has_presence")
    return Counter(Device(**row).connectivity(now=now) for row in Device.objects.values(*fields))


def pumps_by_reporting(*, now: datetime) -> Counter:
    """As `pumps_by_connectivity`, but a stale pump that is silent by design is counted apart, as `quiet`: one without
    presence (the original firmware) and without an infusion on (pending, running, paused) publishes nothing while
    idle, so every screen shows it Stale once HEARTBEAT_TIMEOUT_S has passed, and that says nothing wrong of it.
    What stays `stale` is a pump that should be talking and is not (the alert `PumpStreamPumpsStale`, review 30)."""
    in_use = set(InfusionSession.objects.filter(status__in=ACTIVE_SESSION_STATUSES).values_list("device", flat=True))
    counts = Counter()
    for row in Device.objects.values("pk", "last_seen_at", "presence", "has_presence"):
        pump = Device(**row)
        connectivity = pump.connectivity(now=now)
        quiet = connectivity == Connectivity.STALE and not pump.has_presence and pump.pk not in in_use
        counts[QUIET if quiet else connectivity] += 1
    return counts


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


def operations_summary(*, dead_letters: int = 20) -> dict:
    """What the operations page shows: bridge, message counters, rejects, pumps and alarms."""
    status = latest_bridge()
    stats = dict(status.stats) if status else {}
    stats.pop("metrics", None)
    counted = [_counted_by(bridge) for bridge in counting_bridges(status)]
    now = timezone.now()
    return {
        "bridge": {**bridge_status(status), "name": status.name if status else None, "stats": stats},
        "bridges": counted,
        "received": _summed([bridge["received"] for bridge in counted]),
        "rejected": _summed([bridge["rejected"] for bridge in counted]),
        "pumps": dict(pumps_by_connectivity(now=now)),
        "alarms": alarms_active_by_priority(),
        "escalations": escalation_deliveries_by_state(),
        "deadLetters": [
            {
                "at": letter.received_at.isoformat(),
                "source": letter.source,
                "topic": letter.topic,
                "reason": letter.reason,
                "detail": letter.detail,
            }
            for letter in DeadLetter.objects.order_by("-id")[:dead_letters]
        ],  # fmt: skip
    }


def counting_bridges(status: BridgeStatus | None) -> list[BridgeStatus]:
    """The bridges whose message counters the page sums: every one whose heartbeat is fresh (several bridges share
    the pumps, each counting what it receives, review 31), else the one `latest_bridge` chose, its figures shown
    as from its last heartbeat."""
    fresh = heartbeats_fresh(BridgeStatus.objects.order_by("name"), now=timezone.now())[:BRIDGES_READ]
    return list(fresh) or ([status] if status else [])


def bridges_heard() -> list[BridgeStatus]:
    """Every bridge that has written a heartbeat (the newest BRIDGES_READ), reporting now or not: `/metrics` gives
    each its own series under its name, and marks whether it reports. By name, so a scrape lists them in one order."""
    heard = BridgeStatus.objects.exclude(heartbeat_at=None).order_by("-heartbeat_at")[:BRIDGES_READ]
    return sorted(heard, key=lambda status: status.name)


def bridge_fresh(status: BridgeStatus, *, now: datetime) -> bool:
    """Whether this bridge's heartbeat is fresh (as `selectors.bridge_status` judges it alive, and as
    `counting_bridges` counts it): its figures are current."""
    return heartbeat_fresh(status.heartbeat_at, now=now)


def bridge_reporting(status: BridgeStatus, *, now: datetime) -> bool:
    """Whether this bridge reports now: its heartbeat is fresh and is not its farewell (`stopped`: its figures are
    its last ones, and it holds nothing)."""
    return bridge_fresh(status, now=now) and not (status.stats or {}).get("stopped")


def _counted_by(status: BridgeStatus) -> dict:
    """One bridge process's message counters, and what tells its counting apart: its name and since when it counts
    (a restarted process counts from 0 again)."""
    stats = status.stats or {}
    families = {family["name"]: family["samples"] for family in stats.get("metrics", [])}
    return {
        "name": status.name,
        "heartbeatAt": status.heartbeat_at.isoformat() if status.heartbeat_at else None,
        "countersSince": stats.get("countersSince"),
        "received": _by_label(families.get("pumpstream_bridge_messages_received", []), "kind"),
        "rejected": _by_label(families.get("pumpstream_bridge_messages_rejected", []), "reason"),
    }


def _summed(totals: list[dict[str, float]]) -> dict[str, float]:
    """Totals by label, summed over the bridges."""
    summed = Counter()
    for bridge_totals in totals:
        summed.update(bridge_totals)
    return dict(summed)


def escalation_deliveries_by_state() -> dict[str, int]:
    """Escalation webhook deliveries by state (`dead`: dead-lettered after their tries)."""
    return dict(EscalationDelivery.objects.values_list("state").annotate(n=Count("id")).order_by())


def _by_label(samples: list, label: str) -> dict[str, float]:
    """Counter totals by one label, from a metric family's samples."""
    return {labels[label]: value for name, labels, value in samples if name.endswith("_total") and label in labels}
