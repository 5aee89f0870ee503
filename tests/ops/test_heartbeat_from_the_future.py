"""A bridge's heartbeat stamped ahead of this server's clock is no proof that a bridge runs (review 34, finding 8).

A bridge stamps `heartbeat_at` with its own clock, and every reader judged it fresh by `now - heartbeat_at <=
BRIDGE_STALE_AFTER_S`, true for any heartbeat still to come: a host booted with its clock an hour ahead (an RTC kept
in local time; the units start After=network-online.target, not time-sync.target) whose bridge then died in its
restart loop, NTP putting the clock back, left `/readyz` 200 and every banner hidden for an hour, and
`pumpstream_bridge_heartbeat_age_seconds` negative. Written here through the bridge's own service
`bridge_heartbeat(now=...)`, as a bridge whose clock ran ahead writes it.
"""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from devices.ops_selectors import counting_bridges, operations_summary
from devices.selectors import HEARTBEAT_AHEAD_TOLERANCE_S, bridge_status
from devices.services.records import bridge_heartbeat
from tests.factories import make_user

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-for-tests"
AN_HOUR = timedelta(hours=1)


def heartbeat_ahead(by: timedelta, *, name: str = "bridge") -> None:
    """The last heartbeat of a bridge holding the broker, written while its clock ran `by` ahead of this one."""
    ahead = timezone.now() + by
    bridge_heartbeat(
        broker_connected=True, stats={}, name=name, now=ahead, connected_since=ahead - timedelta(minutes=5)
    )


def scrape(client) -> dict[str, dict[str, float]]:
    """/metrics's samples of each name, by their `bridge` label."""
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    series: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            series.setdefault(sample.name, {})[sample.labels.get("bridge")] = sample.value
    return series


def test_readyz_fails_on_a_heartbeat_stamped_an_hour_ahead(client, broker, settings):
    settings.MQTT = {**settings.MQTT, "HOST": broker.host, "PORT": broker.port}
    heartbeat_ahead(AN_HOUR)
    response = client.get("/readyz")
    checks = response.json()["checks"]
    assert checks["bridge"] == "fail", (
        f"/readyz says bridge {checks['bridge']!r} ({response.status_code}) on a heartbeat stamped an hour ahead of"
        " this clock, no bridge running: it would say so for the next hour"
    )


def test_no_page_and_no_summary_takes_a_heartbeat_from_the_future_for_a_live_bridge(client):
    heartbeat_ahead(AN_HOUR)
    status = bridge_status()
    assert not status["alive"] and not status["brokerConnected"], f"an hour-ahead heartbeat read as alive: {status}"
    assert status["clockAheadS"] == pytest.approx(3600, abs=5), "the skew is said (the operations page names it)"
    client.force_login(make_user("skew-nurse"))
    polled = client.get("/api/bridge/").json()
    assert not polled["alive"], f"the pages' banner poll reads an hour-ahead heartbeat as alive: {polled}"
    assert counting_bridges(None) == [], "the operations page sums the counters of a bridge whose heartbeat is ahead"
    assert not operations_summary()["bridge"]["alive"]


def test_metrics_mark_a_bridge_ahead_down_and_say_its_skew(client, settings, caplog):
    settings.METRICS_TOKEN = TOKEN
    heartbeat_ahead(AN_HOUR, name="bridge-ahead")
    bridge_heartbeat(broker_connected=True, stats={}, name="bridge-now")
    with caplog.at_level(logging.WARNING, logger="pumpstream.ops_metrics"):
        series = scrape(client)
    assert series["pumpstream_bridge_up"] == {"bridge-ahead": 0, "bridge-now": 1}, "a heartbeat from the future is up"
    assert series["pumpstream_bridges_reporting"] == {None: 1}
    assert series["pumpstream_bridge_heartbeat_age_seconds"]["bridge-ahead"] < -3500, "the age is as measured"
    assert any("bridge-ahead" in record.getMessage() and "ahead" in record.getMessage() for record in caplog.records), (
        "nothing in the log says that a bridge's heartbeat is stamped ahead of this server's clock"
    )


def test_a_heartbeat_within_the_tolerance_ahead_is_fresh(client):
    """Two hosts' clocks a fraction of a second apart, or a clock slewed back a little, degrade nothing."""
    heartbeat_ahead(timedelta(seconds=HEARTBEAT_AHEAD_TOLERANCE_S / 2))
    status = bridge_status()
    assert status["alive"] and status["brokerConnected"] and status["clockAheadS"] is None, status
