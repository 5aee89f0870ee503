"""Prometheus metrics of the Daphne process: changes published, connected clients and subscriptions."""

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from realtime.events import DeviceChange

CHANGES_PUBLISHED = Counter(
    "pumpstream_realtime_changes_published_total", "Changes released by the fan-out to clients, by event", ["event"]
)

GAPS_GIVEN_UP = Counter(
    "pumpstream_realtime_gaps_total", "Missing changes the fan-out stopped waiting for (clients resynchronise)"
)
LATE_CHANGES = Counter(
    "pumpstream_realtime_late_changes_total", "Changes that arrived after the fan-out gave up waiting for them"
)


def count_published(change: DeviceChange) -> None:
    """Fan-out release listener: count one published change."""
    CHANGES_PUBLISHED.labels(change.event).inc()


class ClientCollector(Collector):
    """Connected Socket.IO clients and their subscriptions, read when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from realtime.sio.server import client_namespace

        subscribers = list(client_namespace.subscribers.values())
        yield GaugeMetricFamily("pumpstream_realtime_clients", "Connected Socket.IO clients", value=len(subscribers))
        subscriptions = GaugeMetricFamily(
            "pumpstream_realtime_subscriptions", "Socket.IO subscriptions by kind", labels=["kind"]
        )
        subscriptions.add_metric(["device"], sum(len(s.limits.devices) for s in subscribers))
        subscriptions.add_metric(["ward"], sum(len(s.limits.wards) for s in subscribers))
        yield subscriptions


def install() -> None:
    """Register the client collector once (Daphne's start-up)."""
    REGISTRY.register(ClientCollector())
