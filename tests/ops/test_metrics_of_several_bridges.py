"""`/metrics` with several bridges sharing the pumps (`BRIDGE_SLOTS`): each bridge's series under its own name.

Each bridge process counts from 0 what it alone receives and carries its counters in its heartbeat row. `/metrics`
re-exposed the row of whichever bridge `latest_bridge` chose, unlabelled: the series went back each time the other
bridge's heartbeat came first (Prometheus reads a counter reset: a false `rate()` spike), and one bridge's rejects
were out of sight while the other's were shown.
"""

from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from devices.services.records import bridge_heartbeat

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-for-tests"
REJECTED = "pumpstream_bridge_messages_rejected_total"


def heartbeat_stats(rejected: float, *, stopped: bool = False) -> dict:
    """A bridge's heartbeat stats as `worker.heartbeat_stats` writes them: its reject counter's snapshot."""
    family = {
        "name": "pumpstream_bridge_messages_rejected",
        "documentation": "MQTT messages the bridge rejected, by reason",
        "type": "counter",
        "samples": [[REJECTED, {"reason": "bad_json"}, rejected]],
    }
    return {"metrics": [family], "countersSince": "2026-12-06T04:00:00+00:00", **({"stopped": True} if stopped else {})}


def scrape(client) -> dict[str, dict[tuple, float]]:
    """/metrics as Prometheus reads it: each sample name's series, by their labels."""
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    series: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            series.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return series


def by_bridge(series: dict[tuple, float]) -> dict[str, float]:
    return {dict(labels).get("bridge"): value for labels, value in series.items()}


def test_each_bridges_counter_goes_only_forward_under_its_own_name(client, settings):
    """Two bridges heartbeat in turn, each counting more: between two scrapes no series goes back, and both
    bridges' rejects are in every scrape, under their names, never summed into one nor one hidden."""
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()
    turns = [("bridge-0", 5, now - timedelta(seconds=2)), ("bridge-1", 2, now - timedelta(seconds=1)),
             ("bridge-0", 6, now - timedelta(seconds=0.5)), ("bridge-1", 3, now)]  # fmt: skip
    for name, rejected, at in turns[:2]:
        bridge_heartbeat(broker_connected=True, name=name, stats=heartbeat_stats(rejected), now=at)
    scrapes = [scrape(client)[REJECTED]]
    for name, rejected, at in turns[2:]:
        bridge_heartbeat(broker_connected=True, name=name, stats=heartbeat_stats(rejected), now=at)
        scrapes.append(scrape(client)[REJECTED])
    for before, after in pairwise(scrapes):
        went_back = {labels: (before[labels], total) for labels, total in after.items()
                     if total < before.get(labels, 0)}  # fmt: skip
        assert not went_back, f"a counter went backwards between two scrapes (a false reset): {went_back}"
    assert [by_bridge(series) for series in scrapes] == [
        {"bridge-0": 5, "bridge-1": 2}, {"bridge-0": 6, "bridge-1": 2}, {"bridge-0": 6, "bridge-1": 3},
    ], "each bridge's rejects must be in every scrape, under its own name"  # fmt: skip


def test_a_bridge_stale_or_stopped_is_marked_down_and_its_figures_are_not_shown_as_current(client, settings):
    """As the operations page: a bridge whose heartbeat is stale, or whose last heartbeat is its farewell, is down
    (0) beside one reporting (1); a stale bridge's last counters and broker state are not current and are not
    exposed (a farewell's final counts are, until it turns stale); the count of bridges reporting says whether
    monitoring itself is up."""
    settings.METRICS_TOKEN = TOKEN
    stale = timezone.now() - timedelta(seconds=settings.PUMPSTREAM["BRIDGE_STALE_AFTER_S"] + 5)
    bridge_heartbeat(broker_connected=True, name="bridge-0", stats=heartbeat_stats(4))
    bridge_heartbeat(broker_connected=True, name="bridge-1", stats=heartbeat_stats(9), now=stale)
    bridge_heartbeat(broker_connected=False, name="bridge-2", stats=heartbeat_stats(7, stopped=True))
    series = scrape(client)
    assert by_bridge(series["pumpstream_bridge_up"]) == {"bridge-0": 1, "bridge-1": 0, "bridge-2": 0}
    assert series["pumpstream_bridges_reporting"] == {(): 1}
    assert by_bridge(series["pumpstream_bridge_broker_connected"]) == {"bridge-0": 1}, "only a reporting bridge's"
    assert by_bridge(series[REJECTED]) == {"bridge-0": 4, "bridge-2": 7}, "a stale bridge's counters are not current"
    ages = by_bridge(series["pumpstream_bridge_heartbeat_age_seconds"])
    assert ages.keys() == {"bridge-0", "bridge-1", "bridge-2"} and ages["bridge-1"] > ages["bridge-0"]


def test_no_bridge_reporting_says_monitoring_is_down(client, settings):
    settings.METRICS_TOKEN = TOKEN
    series = scrape(client)
    assert series["pumpstream_bridges_reporting"] == {(): 0}
    assert "pumpstream_bridge_up" not in series, "no bridge has ever reported: none to name"


def test_a_bridge_of_an_older_release_carrying_its_broker_gauge_is_not_exposed_twice(client, settings):
    """Whether a bridge holds the broker comes from its row; the gauge an older bridge still carries in its
    snapshot (set by each slot's link, 0 once it let one slot go) is left out, so the family is exposed once."""
    settings.METRICS_TOKEN = TOKEN
    stats = heartbeat_stats(1)
    stats["metrics"].append({"name": "pumpstream_bridge_broker_connected", "documentation": "", "type": "gauge",
                             "samples": [["pumpstream_bridge_broker_connected", {}, 0.0]]})  # fmt: skip
    bridge_heartbeat(broker_connected=True, name="bridge-0", stats=stats)
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert body.count("# TYPE pumpstream_bridge_broker_connected gauge") == 1
    assert by_bridge(scrape(client)["pumpstream_bridge_broker_connected"]) == {"bridge-0": 1}
