"""/healthz, /readyz and /metrics: status codes, what they reveal, and who may read metrics."""

import logging
from unittest import mock

import pytest
from django.utils import timezone

from devices.models import Alarm
from devices.services.records import bridge_heartbeat
from pumpstream.logformat import ReadinessAnswerFilter
from tests.factories import make_device, make_user

pytestmark = pytest.mark.django_db


def test_healthz_is_anonymous_and_says_little(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_fails_naming_the_check_when_bridge_silent(client, settings):
    settings.MQTT = {**settings.MQTT, "HOST": "127.0.0.1", "PORT": 1}  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "fail",
        "checks": {"database": "ok", "schema": "ok", "broker": "fail", "bridge": "fail", "realtime": "ok"},
    }  # fmt: skip


def test_readyz_fails_while_the_realtime_sides_database_thread_cannot_read(client, settings, broker, monkeypatch):
    """Socket.IO connects, subscriptions, ward feeds and escalations read on a thread and a connection of their own:
    `/readyz` said ok while every one of them failed after a PostgreSQL restart (review 38, F1)."""
    from django.db import OperationalError

    from realtime.sio import database

    def connection_closed() -> None:
        raise OperationalError("the connection is closed")

    settings.MQTT = {**settings.MQTT, "HOST": broker.host, "PORT": broker.port}
    bridge_heartbeat(broker_connected=True, now=timezone.now())
    monkeypatch.setattr(database, "_select_one", connection_closed)
    response = client.get("/readyz")
    assert response.status_code == 503, f"/readyz said {response.json()} while the realtime side could not read"
    assert response.json()["checks"] == {"database": "ok", "schema": "ok", "broker": "ok", "bridge": "ok",
                                         "realtime": "fail"}  # fmt: skip


def test_readyz_ok_with_broker_and_fresh_bridge(client, settings, broker):
    settings.MQTT = {**settings.MQTT, "HOST": broker.host, "PORT": broker.port}
    bridge_heartbeat(broker_connected=True, now=timezone.now())
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()


def test_metrics_refuses_anonymous_and_non_staff(client):
    assert client.get("/metrics").status_code == 401
    client.force_login(make_user("viewer"))
    assert client.get("/metrics").status_code == 401


def test_metrics_with_bearer_token_counts_pumps_and_alarms(client, settings):
    settings.METRICS_TOKEN = "scrape-token-for-tests"
    device = make_device(last_seen_at=timezone.now())
    Alarm.objects.create(device=device, type="occlusion", priority="high", source="device")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests").content.decode()
    assert 'pumpstream_pumps{connectivity="online"} 1.0' in body
    assert 'pumpstream_active_alarms{priority="high"} 1.0' in body


def test_metrics_re_exposes_the_bridges_counters_from_its_heartbeat(client, settings):
    from realtime import metrics as bridge_metrics

    settings.METRICS_TOKEN = "scrape-token-for-tests"
    bridge_metrics.MESSAGES_REJECTED.labels("bad_json").inc(3)
    bridge_heartbeat(broker_connected=True, stats={"metrics": bridge_metrics.registry_snapshot()})
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests").content.decode()
    rejected = [
        line
        for line in body.splitlines()
        if line.startswith('pumpstream_bridge_messages_rejected_total{bridge="bridge",reason="bad_json"}')
    ]
    assert rejected and float(rejected[0].split()[-1]) >= 3, "the bridge's reject counter must reach /metrics, named"
    assert "pumpstream_bridge_heartbeat_age_seconds" in body
    assert body.count("# TYPE pumpstream_bridge_messages_rejected_total counter") == 1, "no duplicate families"


def test_operations_page_is_for_staff_only(client):
    assert client.get("/ops/").status_code == 302, "anonymous users are sent to sign in"
    client.force_login(make_user("viewer"))
    assert client.get("/ops/status.json").status_code == 302
    client.force_login(make_user("ops", is_staff=True))
    assert client.get("/ops/").status_code == 200


def test_operations_status_shows_rejects_dead_letters_and_pumps(client):
    from devices.services.records import dead_letter_record
    from realtime import metrics as bridge_metrics

    bridge_metrics.MESSAGES_REJECTED.labels("unknown_device").inc()
    bridge_heartbeat(broker_connected=True, stats={"inbox": 4, "metrics": bridge_metrics.registry_snapshot()})
    dead_letter_record(topic="devices/NOPE/status", source="NOPE", reason="unknown_device", payload=b"{}")
    make_device(last_seen_at=timezone.now())
    client.force_login(make_user("ops", is_staff=True))
    data = client.get("/ops/status.json").json()
    assert data["bridge"]["alive"] is True and data["bridge"]["stats"]["inbox"] == 4
    assert data["rejected"]["unknown_device"] >= 1
    assert data["deadLetters"][0]["reason"] == "unknown_device" and data["deadLetters"][0]["source"] == "NOPE"
    assert data["pumps"] == {"online": 1}
    assert data["clients"]["connected"] >= 0


def test_readyz_fails_when_the_bridge_is_alive_but_lost_the_broker(client, settings, broker):
    settings.MQTT = {**settings.MQTT, "HOST": broker.host, "PORT": broker.port}
    bridge_heartbeat(broker_connected=False, now=timezone.now())
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["bridge"] == "fail"


def test_readyz_fails_while_migrations_of_the_code_are_unapplied_and_names_why_the_bridge_waits(
    client, settings, broker, monkeypatch
):
    """Review 34: new code started before `manage.py migrate` read ready; the bridge waiting for it says why."""
    from pumpstream import ops

    settings.MQTT = {**settings.MQTT, "HOST": broker.host, "PORT": broker.port}
    monkeypatch.setattr(ops, "_schema_seen_current", False)
    monkeypatch.setattr(ops, "migrations_unapplied", lambda: ["devices.0036_next"])
    bridge_heartbeat(broker_connected=False, stats={"schemaBehind": ["devices.0036_next"]}, now=timezone.now())
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["checks"]["schema"] == "fail", body
    assert body["bridgeCause"] == "schema_behind", body


def test_readyz_names_a_session_taken_over_by_another_client(client, settings, broker):
    """Review 34: two bridges with one client id take the broker session from each other; the heartbeat of the one
    that saw it says the broker is not held, and why."""
    settings.MQTT = {**settings.MQTT, "HOST": broker.host, "PORT": broker.port}
    bridge_heartbeat(broker_connected=False, stats={"sessionContested": True, "sessionTakenOver": 2},
                     now=timezone.now())  # fmt: skip
    body = client.get("/readyz").json()
    assert body["checks"]["bridge"] == "fail" and body["bridgeCause"] == "session_taken_over", body


def _counters(since: str, progress: float, rejected: float) -> dict:
    """A bridge process's heartbeat stats: its counters (as `metrics.registry_snapshot` carries them), their start."""
    received = {
        "name": "pumpstream_bridge_messages_received",
        "documentation": "",
        "type": "counter",
        "samples": [["pumpstream_bridge_messages_received_total", {"kind": "progress"}, progress]],
    }
    refused = {
        "name": "pumpstream_bridge_messages_rejected",
        "documentation": "",
        "type": "counter",
        "samples": [["pumpstream_bridge_messages_rejected_total", {"reason": "bad_json"}, rejected]],
    }
    return {"countersSince": since, "metrics": [received, refused]}


def test_operations_status_sums_the_counters_of_every_bridge_reporting_and_names_each(client, settings):
    """Two bridges sharing the pumps (BRIDGE_SLOTS=2) each count what they receive: the totals are their sum, and
    each bridge's own counters go with its name and start, so the page keeps their rates apart (review 31, finding
    4: the summary gave whichever heartbeat last, and the page read each change of bridge as a restart). A bridge
    no longer reporting is not summed."""
    now = timezone.now()
    bridge_heartbeat(
        broker_connected=True, name="pumpstream-bridge-0", stats=_counters("2026-12-06T04:00:00+00:00", 1000, 2)
    )
    bridge_heartbeat(
        broker_connected=True, name="pumpstream-bridge-1", stats=_counters("2026-12-06T04:00:05+00:00", 5000, 1)
    )
    gone = now - timezone.timedelta(seconds=settings.PUMPSTREAM["BRIDGE_STALE_AFTER_S"] + 5)
    bridge_heartbeat(
        broker_connected=True, name="pumpstream-bridge-2", stats=_counters("2026-12-06T03:00:00+00:00", 70, 0), now=gone
    )
    client.force_login(make_user("ops", is_staff=True))
    data = client.get("/ops/status.json").json()
    assert data["received"] == {"progress": 6000} and data["rejected"] == {"bad_json": 3}
    counted = [(bridge["name"], bridge["countersSince"], bridge["received"]) for bridge in data["bridges"]]
    assert counted == [("pumpstream-bridge-0", "2026-12-06T04:00:00+00:00", {"progress": 1000}),
                       ("pumpstream-bridge-1", "2026-12-06T04:00:05+00:00", {"progress": 5000})]  # fmt: skip
    assert "metrics" not in data["bridge"]["stats"]


def test_a_not_ready_answer_is_logged_as_one_not_as_a_server_error(client, settings, rf):
    """`make run` printed `ERROR django.request Service Unavailable: /readyz` twice as it started (its script asks
    every half second until the bridge holds the broker), and every orchestrator's probe would: an INFO line naming the
    failing checks now; any other 5xx stays an ERROR."""
    settings.MQTT = {**settings.MQTT, "HOST": "127.0.0.1", "PORT": 1}
    console = next(handler for handler in logging.getLogger().handlers
                   if any(isinstance(kept, ReadinessAnswerFilter) for kept in handler.filters))  # fmt: skip
    emitted: list[logging.LogRecord] = []
    with mock.patch.object(console, "emit", side_effect=emitted.append):
        assert client.get("/readyz").status_code == 503
        logging.getLogger("django.request").error(
            "Internal Server Error: /devices/", extra={"status_code": 500, "request": rf.get("/devices/")}
        )
    said = [(record.levelname, record.getMessage(), getattr(record, "reason", "")) for record in emitted]
    assert said == [
        ("WARNING", "readiness: broker unreachable", ""),
        ("INFO", "not ready", "broker,bridge"),
        ("ERROR", "Internal Server Error: /devices/", ""),
    ]
