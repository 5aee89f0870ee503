"""Prometheus metrics of the Daphne process: changes published, connected clients and subscriptions."""

from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from protocol.events import DeviceChange

if TYPE_CHECKING:
    from realtime.sio.subscriptions import Subscriber

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
    """Connected Socket.IO clients and their subscriptions, read when scraped.

    The server hands in how to list its clients (`install`), so this module never imports the server
    (it did, lazily, which closed an import circle fan-out -> metrics -> server -> fan-out).
    """

    def __init__(self, subscribers: Callable[[], Collection["Subscriber"]]) -> None:
        self.subscribers = subscribers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        subscribers = list(self.subscribers())
        yield GaugeMetricFamily("pumpstream_realtime_clients", "Connected Socket.IO clients", value=len(subscribers))
        subscriptions = GaugeMetricFamily(
            "pumpstream_realtime_subscriptions", "Socket.IO subscriptions by kind", labels=["kind"]
        )
        subscriptions.add_metric(["device"], sum(len(s.limits.devices) for s in subscribers))
        subscriptions.add_metric(["ward"], sum(len(s.limits.wards) for s in subscribers))
        yield subscriptions


def install(subscribers: Callable[[], Collection["Subscriber"]]) -> None:
    """Register the client collector once (Daphne's start-up), reading clients from `subscribers()`."""
    REGISTRY.register(ClientCollector(subscribers))
