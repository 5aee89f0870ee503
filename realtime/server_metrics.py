"""Prometheus metrics of the Daphne process: changes published and their lag, the change log, clients."""

from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING

from django.utils import timezone
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from devices.changelog_selectors import change_log_extent
from protocol.events import DeviceChange

if TYPE_CHECKING:
    from realtime.sio.subscriptions import Subscriber

CHANGES_PUBLISHED = Counter(
    "pumpstream_realtime_changes_published_total", "Changes released by the fan-out to clients, by event", ["event"]
)

PUBLISHER_LAG = Histogram(
    "pumpstream_realtime_publisher_lag_seconds",
    "From a change being recorded (inside its transaction) to the publisher handing it to the fan-out",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

PUBLISHER_GAPS_GIVEN_UP = Counter(
    "pumpstream_realtime_publisher_gaps_given_up_total",
    "Change-log ids passed over uncommitted beyond the 10,000 the publisher looks up one by one: read as one range"
    " once a second instead until their transactions end (a transaction left open for long)",
)
PUBLISHER_WOKEN = Counter(
    "pumpstream_realtime_publisher_changes_total",
    "Change-log rows the publisher read, by what made it read: commit (this process), bridge (its wake over"
    " /internal), notify (PostgreSQL NOTIFY, any process's commit) or poll (the safety poll found them)",
    ["woken_by"],
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


class ChangeLogCollector(Collector):
    """The change log's size and age, and how far this process's publisher is behind it, read when scraped."""

    def __init__(self, position: Callable[[], int | None]) -> None:
        self.position = position

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lowest, highest, oldest_at = change_log_extent()
        rows = highest - lowest + 1 if highest else 0  # ids are consecutive but for rolled-back inserts
        age = (timezone.now() - oldest_at).total_seconds() if oldest_at else 0.0
        position = self.position()
        behind = max(0, highest - position) if position is not None else 0
        yield from self._families(rows, age, behind)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Its series without reading the database: the registry asks at Daphne's start-up, which must not need a
        migrated database (before, a new database's first `runserver` failed on the missing change log)."""
        yield from self._families(0, 0.0, 0)

    @staticmethod
    def _families(rows: int, age: float, behind: int) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("pumpstream_change_log_rows", "Entries in the change log (about)", value=rows)
        yield GaugeMetricFamily("pumpstream_change_log_oldest_seconds", "Age of the change log's oldest entry",
                                value=age)  # fmt: skip
        yield GaugeMetricFamily("pumpstream_realtime_publisher_behind_entries",
                                "Change-log entries committed but not yet read by this process's publisher",
                                value=behind)  # fmt: skip


class FanOutCollector(Collector):
    """Changes the publisher handed to the fan-out that are not yet delivered, and the oldest one's wait."""

    def __init__(self, backlog: Callable[[], tuple[int, float]]) -> None:
        self.backlog = backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queued, oldest_s = self.backlog()
        yield GaugeMetricFamily("pumpstream_realtime_fanout_queued_changes",
                                "Changes published to this process's fan-out and not yet delivered",
                                value=queued)  # fmt: skip
        yield GaugeMetricFamily("pumpstream_realtime_fanout_oldest_queued_seconds",
                                "How long the oldest undelivered change has waited in the fan-out (0: none)",
                                value=oldest_s)  # fmt: skip


class ChangeNotifyCollector(Collector):
    """Whether this Daphne listens for PostgreSQL's change notifications (`realtime/pg_notify.py`), read when scraped.

    Registered only where a listener runs (PostgreSQL), so SQLite exposes no series that reads as "down"."""

    def __init__(self, listening: Callable[[], bool]) -> None:
        self.listening = listening

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("pumpstream_realtime_change_notify_listening",
                                "1 while this Daphne listens for PostgreSQL's change notifications; 0 while it"
                                " reconnects (its safety poll still reads every change within 1 s)",
                                value=1.0 if self.listening() else 0.0)  # fmt: skip


_change_notify: ChangeNotifyCollector | None = None


def change_notify_install(listening: Callable[[], bool]) -> None:
    """Expose the listener's state (once a process: a second call points the one collector at the new listener)."""
    global _change_notify
    if _change_notify is None:
        _change_notify = ChangeNotifyCollector(listening)
        REGISTRY.register(_change_notify)
    else:
        _change_notify.listening = listening


def install(subscribers: Callable[[], Collection["Subscriber"]], position: Callable[[], int | None],
            backlog: Callable[[], tuple[int, float]]) -> None:  # fmt: skip
    """Register the collectors once (Daphne's start-up): clients from `subscribers()`, the publisher's `position()`,
    the fan-out's `backlog()`."""
    REGISTRY.register(ClientCollector(subscribers))
    REGISTRY.register(ChangeLogCollector(position))
    REGISTRY.register(FanOutCollector(backlog))
