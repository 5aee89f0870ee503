"""The benchmark's statistics: nearest-rank percentiles, loss, duplicates and reorderings per stream."""

import math

import pytest

from bench.stats import DeliveryTracker, deliveries_merge, latency_summary, percentile


def test_nearest_rank_percentiles_of_one_to_hundred():
    values = list(range(1, 101))
    assert [percentile(values, q) for q in (50, 90, 99, 100)] == [50, 90, 99, 100]


def test_percentile_of_few_values_is_an_observed_value_never_an_interpolation():
    assert percentile([10.0, 20.0, 30.0], 50) == 20.0
    assert percentile([10.0, 20.0, 30.0], 99) == 30.0, "p99 of three samples is the largest"
    assert percentile([7.0], 1) == 7.0


def test_percentile_of_nothing_is_nan_and_a_bad_rank_is_refused():
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_latency_summary_sorts_its_input():
    summary = latency_summary([5.0, 1.0, 3.0, 2.0, 4.0])
    assert summary == {"count": 5, "p50_ms": 3.0, "p90_ms": 5.0, "p99_ms": 5.0, "max_ms": 5.0}
    assert latency_summary([])["p99_ms"] is None


def test_a_duplicate_is_counted_once_and_never_as_a_delivery():
    tracker = DeliveryTracker()
    for intended in (1.0, 2.0, 2.0, 3.0):
        tracker.record(("client-1", "PUMP_1"), intended, intended + 0.010)
    assert (tracker.received, tracker.duplicates, tracker.reorders) == (3, 1, 0)
    assert tracker.latencies_ms == pytest.approx([10.0, 10.0, 10.0])


def test_an_older_message_after_a_newer_one_is_a_reordering_per_stream():
    tracker = DeliveryTracker()
    tracker.record(("a", "P1"), 2.0, 2.1)
    tracker.record(("a", "P1"), 1.0, 2.2)  # late: reordered
    tracker.record(("b", "P1"), 1.0, 1.1)  # another watcher's stream: in order for it
    tracker.record(("a", "P2"), 1.5, 1.6)  # another pump: in order
    assert (tracker.received, tracker.duplicates, tracker.reorders) == (4, 0, 1)


def test_merge_counts_loss_against_what_was_expected():
    first, second = DeliveryTracker(), DeliveryTracker()
    first.record("s1", 1.0, 1.002)
    second.record("s2", 1.0, 1.004)
    second.record("s2", 1.0, 1.005)
    merged = deliveries_merge([first.summary(), second.summary()], expected=3)
    assert (merged["received"], merged["lost"], merged["duplicates"]) == (2, 1, 1)
    assert merged["max_ms"] == pytest.approx(4.0)
