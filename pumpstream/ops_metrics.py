"""What `/metrics` adds at scrape time: domain gauges from the database and the bridge's own metrics.

The bridge is a separate process; it carries a snapshot of its metrics in its heartbeat row
(`BridgeStatus.stats["metrics"]`, refreshed every BRIDGE_HEARTBEAT_S), re-exposed here, so one
authenticated endpoint serves both processes.
"""

from collections.abc import Iterator

from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devices.ops_selectors import (
    QUIET,
    alarms_active_by_priority,
    alarms_active_of_type,
    commands_by_state,
    escalation_deliveries_by_state,
    pumps_by_reporting,
)
from devices.selectors import latest_bridge
from devices.states import AlarmPriority, CommandState, Connectivity, DeliveryState

BRIDGE_PREFIX = "pumpstream_bridge"
DOMAIN = CollectorRegistry()  # what /metrics serves
PUMPS_BY_CONNECTIVITY = Gauge("pumpstream_pumps", "Registered pumps by connectivity (quiet: stale, silent by design)",
                              ["connectivity"], registry=DOMAIN)  # fmt: skip
ACTIVE_ALARMS = Gauge("pumpstream_active_alarms", "Active alarms by priority", ["priority"], registry=DOMAIN)
COMMUNICATION_LOST = Gauge("pumpstream_communication_lost_alarms", "Active communication_lost alarms", registry=DOMAIN)
COMMANDS_BY_STATE = Gauge("pumpstream_commands", "Commands by state", ["state"], registry=DOMAIN)
ESCALATIONS_BY_STATE = Gauge("pumpstream_escalation_deliveries", "Escalation webhook deliveries by state", ["state"],
                             registry=DOMAIN)  # fmt: skip


class BridgeCollector(Collector):
    """The bridge's liveness and its metrics, from its heartbeat row."""

    def collect(self) -> Iterator[Metric]:
        status = latest_bridge()
        age = (timezone.now() - status.heartbeat_at).total_seconds() if status and status.heartbeat_at else -1
        yield GaugeMetricFamily(
            "pumpstream_bridge_heartbeat_age_seconds", "Seconds since the bridge's heartbeat (-1: never)", value=age
        )
        for family in status.stats.get("metrics", []) if status else []:
            metric = Metric(family["name"], family["documentation"], family["type"])
            for name, labels, value in family["samples"]:
                metric.add_sample(name, labels, value)
            yield metric


class ThisProcessCollector(Collector):
    """This process's own metrics; bridge families come only from the bridge's heartbeat, never twice."""

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if not family.name.startswith(BRIDGE_PREFIX):
                yield family


DOMAIN.register(BridgeCollector())
DOMAIN.register(ThisProcessCollector())


def refresh_domain_gauges() -> None:
    """Recompute the gauges (connectivity is derived, so it is computed here, not stored)."""
    now = timezone.now()
    connectivity = pumps_by_reporting(now=now)
    for state in [*Connectivity.values, QUIET]:
        PUMPS_BY_CONNECTIVITY.labels(state).set(connectivity.get(state, 0))
    alarms = alarms_active_by_priority()
    for priority in AlarmPriority.values:
        ACTIVE_ALARMS.labels(priority).set(alarms.get(priority, 0))
    COMMUNICATION_LOST.set(alarms_active_of_type("communication_lost"))
    commands = commands_by_state()
    for state in CommandState.values:
        COMMANDS_BY_STATE.labels(state).set(commands.get(state, 0))
    escalations = escalation_deliveries_by_state()
    for state in DeliveryState.values:
        ESCALATIONS_BY_STATE.labels(state).set(escalations.get(state, 0))
