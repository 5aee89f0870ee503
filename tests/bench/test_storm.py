"""The Node storm watchers' raw figures read as the Python watchers' result (`bench.storm.node_watchers_result`)."""

from bench.storm import EVENT_NAMES, node_watchers_result
from protocol import events


def test_node_figures_are_summarised_as_the_python_watchers_write_them():
    live = {"received": 2, "duplicates": 1, "reorders": 0, "latencies_ms": [4.0, 6.0]}
    raw = {"live": {"sentinel": live, "storm": live}, "connect_failures": ["storm 7: timeout"], "cpu_s": 1.5,
           "subscriptions": {"requested": 4, "delivered_ms": [100.0, 300.0, 200.0]},
           "alarms": {"injected": 2, "expected": 5, "arrived_ms": [50.0, 70.0]}}  # fmt: skip
    result = node_watchers_result(raw)
    assert result["live"] == raw["live"]
    assert result["subscriptions"]["requested"] == 4 and result["subscriptions"]["delivered"] == 3
    assert result["subscriptions"]["max_ms"] == 300.0 and result["subscriptions"]["count"] == 3
    assert result["alarms"] == {**result["alarms"], "injected": 2, "expected": 5, "received": 2, "max_ms": 70.0}
    assert result["connect_failures"] == ["storm 7: timeout"] and result["cpu_s"] == 1.5


def test_nothing_delivered_has_no_latency():
    raw = {"live": {}, "connect_failures": [], "subscriptions": {"requested": 2, "delivered_ms": []},
           "alarms": {"injected": 1, "expected": 1, "arrived_ms": []}}  # fmt: skip
    result = node_watchers_result(raw)
    assert result["subscriptions"]["delivered"] == 0 and result["subscriptions"]["max_ms"] is None
    assert result["alarms"]["received"] == 0 and result["alarms"]["p99_ms"] is None


def test_the_node_watchers_get_the_event_names_from_the_protocol():
    assert EVENT_NAMES["alarm"] == events.DEVICE_ALARM and EVENT_NAMES["subscribeDevices"] == events.SUBSCRIBE_DEVICES
