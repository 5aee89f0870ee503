"""Benchmark statistics: nearest-rank percentiles and per-stream delivery counting (duplicates, reorderings)."""

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

PERCENTILES = (50, 90, 99)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of already sorted values; NaN when there are none."""
    if not sorted_values:
        return math.nan
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def latency_summary(latencies_ms: Iterable[float]) -> dict[str, float | int | None]:
    """p50, p90, p99 and max (ms, rounded to 0.01) and the count of `latencies_ms`."""
    ordered = sorted(latencies_ms)
    summary: dict[str, float | int | None] = {"count": len(ordered)}
    for q in PERCENTILES:
        summary[f"p{q}_ms"] = round(percentile(ordered, q), 2) if ordered else None
    summary["max_ms"] = round(ordered[-1], 2) if ordered else None
    return summary


@dataclass
class StreamState:
    """What one watcher has seen of one pump: the message keys and the newest intended send time."""

    seen: set[float] = field(default_factory=set)
    newest: float = -math.inf


@dataclass
class DeliveryTracker:
    """Counts deliveries per stream (one watcher x one pump): unique, duplicated, and arriving out of order.

    A message is keyed by its intended send time, unique per pump. A duplicate is a key seen before on the
    same stream; a reordering is a new key older than the newest already seen on that stream.
    """

    received: int = 0
    duplicates: int = 0
    reorders: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    streams: dict[Hashable, StreamState] = field(default_factory=dict)

    def record(self, stream: Hashable, intended_at: float, received_at: float) -> None:
        """One delivery on `stream` of the message meant to be sent at `intended_at` (epoch seconds)."""
        state = self.streams.get(stream)
        if state is None:
            state = self.streams[stream] = StreamState()
        if intended_at in state.seen:
            self.duplicates += 1
            return
        state.seen.add(intended_at)
        if intended_at < state.newest:
            self.reorders += 1
        else:
            state.newest = intended_at
        self.received += 1
        self.latencies_ms.append((received_at - intended_at) * 1000)

    def summary(self) -> dict:
        """Counts and raw latencies, JSON-ready (merged across watcher processes by `deliveries_merge`)."""
        return {"received": self.received, "duplicates": self.duplicates, "reorders": self.reorders,
                "latencies_ms": [round(value, 3) for value in self.latencies_ms]}  # fmt: skip


def deliveries_merge(parts: Iterable[dict], *, expected: int) -> dict:
    """One figure set from several trackers' summaries: latency percentiles, loss, duplicates, reorderings."""
    parts = list(parts)
    received = sum(part["received"] for part in parts)
    latencies = [value for part in parts for value in part["latencies_ms"]]
    return {
        "expected": expected,
        "received": received,
        "lost": max(expected - received, 0),
        "duplicates": sum(part["duplicates"] for part in parts),
        "reorders": sum(part["reorders"] for part in parts),
        **latency_summary(latencies),
    }


def ratio(value: float | None, floor: float | None) -> float | None:
    """`value / floor` rounded to 0.1, or None when either is missing or the floor is zero."""
    if value is None or not floor:
        return None
    return round(value / floor, 1)
