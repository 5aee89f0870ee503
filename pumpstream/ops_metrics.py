"""What `/metrics` adds at scrape time: domain gauges from the database and the bridges' own metrics.

A bridge is a separate process; it carries a snapshot of its metrics in its heartbeat row
(`BridgeStatus.stats["metrics"]`, refreshed every BRIDGE_HEARTBEAT_S), re-exposed here, so one
authenticated endpoint serves every process. Several bridges may share the pumps (`BRIDGE_SLOTS`), each
counting from 0 what it alone receives: each series of a bridge carries its name (`bridge`), so each
counter stays its own process's, never another bridge's figure in its place (which Prometheus would read
as a counter reset, and whose counts would hide the other's).
"""

import logging
from collections.abc import Iterator
from datetime import datetime

from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devices.models import BridgeStatus
from devices.ops_selectors import (
    QUIET,
    alarms_active_by_priority,
    alarms_active_of_type,
    bridge_fresh,
    bridge_reporting,
    bridges_heard,
    commands_by_state,
    escalation_deliveries_by_state,
    pumps_by_reporting,
)
from devices.selectors import heartbeat_ahead_s
from devices.states import AlarmPriority, CommandState, Connectivity, DeliveryState

logger = logging.getLogger(__name__)

BRIDGE_PREFIX = "pumpstream_bridge"
ROW_FAMILIES = {"pumpstream_bridge_broker_connected"}  # from the heartbeat rows (`bridge_liveness`), not a snapshot
DOMAIN = CollectorRegistry()  # what /metrics serves
PUMPS_BY_CONNECTIVITY = Gauge("pumpstream_pumps", "Registered pumps by connectivity (quiet: stale, silent by design)",
                              ["connectivity"], registry=DOMAIN)  # fmt: skip
ACTIVE_ALARMS = Gauge("pumpstream_active_alarms", "Active alarms by priority", ["priority"], registry=DOMAIN)
COMMUNICATION_LOST = Gauge("pumpstream_communication_lost_alarms", "Active communication_lost alarms", registry=DOMAIN)
COMMANDS_BY_STATE = Gauge("pumpstream_commands", "Commands by state", ["state"], registry=DOMAIN)
ESCALATIONS_BY_STATE = Gauge("pumpstream_escalation_deliveries", "Escalation webhook deliveries by state", ["state"],
                             registry=DOMAIN)  # fmt: skip


class BridgeCollector(Collector):
    """Each bridge's liveness (from its heartbeat row) and metrics (from its heartbeat's snapshot), under its name."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        bridges = bridges_heard()
        yield from bridge_liveness(bridges, now=now)
        yield from bridge_families([status for status in bridges if bridge_fresh(status, now=now)])


def bridge_liveness(bridges: list[BridgeStatus], *, now: datetime) -> Iterator[Metric]:
    """Whether each bridge reports, its heartbeat's age and (while it reports) whether it holds the broker, as its
    row says (what `/ops/` and `/readyz` show; a process's own gauge went to 0 when it handed a slot back, holding
    others), and how many bridges report. The age is as measured: negative when the bridge's clock is ahead of this
    server's (beyond the tolerance it is down, and logged: the alert PumpStreamBridgeClockAhead reads the age)."""
    label = ["bridge"]
    up = GaugeMetricFamily("pumpstream_bridge_up", "1 while the bridge reports (a fresh heartbeat, not its "
                           "farewell), 0 stale or stopped", labels=label)  # fmt: skip
    age = GaugeMetricFamily("pumpstream_bridge_heartbeat_age_seconds", "Seconds since the bridge's heartbeat",
                            labels=label)  # fmt: skip
    broker = GaugeMetricFamily("pumpstream_bridge_broker_connected", "1 while the bridge holds the broker "
                               "(bridges reporting only)", labels=label)  # fmt: skip
    reporting = 0
    for status in bridges:
        alive = bridge_reporting(status, now=now)
        reporting += alive
        up.add_metric([status.name], int(alive))
        age.add_metric([status.name], (now - status.heartbeat_at).total_seconds())
        ahead_s = heartbeat_ahead_s(status.heartbeat_at, now=now)
        if ahead_s is not None:
            logger.warning("bridge %s: heartbeat stamped %.1f s ahead of this server's clock, not counted as alive",
                           status.name, ahead_s, extra={"reason": "clock skew"})  # fmt: skip
        if alive:
            broker.add_metric([status.name], int(status.broker_connected))
    yield GaugeMetricFamily("pumpstream_bridges_reporting", "Bridges reporting now (0: monitoring down)", reporting)
    yield from (up, age, broker)


def bridge_families(bridges: list[BridgeStatus]) -> Iterator[Metric]:
    """The metric families of these bridges' snapshots, one family per name, each sample labelled with its bridge."""
    families: dict[str, Metric] = {}
    for status in bridges:
        for family in (status.stats or {}).get("metrics", []):
            if family["name"] in ROW_FAMILIES:  # a bridge of an older release still carries it: the row's is used
                continue
            metric = families.setdefault(family["name"], Metric(family["name"], family["documentation"],
                                                                family["type"]))  # fmt: skip
            for name, labels, value in family["samples"]:
                metric.add_sample(name, {"bridge": status.name, **labels}, value)
    yield from families.values()


class ThisProcessCollector(Collector):
    """This process's own metrics; bridge families come only from the bridges' heartbeats, never twice."""

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
