"""Daphne restarted: Socket.IO clients reconnect with backoff, subscribe again and end as a fresh subscriber does."""

import logging
import time

import pytest
from django.db import close_old_connections

from devices.models import Device
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.daphne import DaphneServer
from tests.support.reliability import ReconnectingSubscriber
from tests.support.sio import session_cookie, state_from_events

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

DEVICE = "PUMP_DAPHNE"


def current_seq() -> int:
    close_old_connections()
    return Device.objects.get(device_id=DEVICE).event_seq


def latest_seq(client: ReconnectingSubscriber) -> int:
    return max((data["seq"] for _, data in client.since_last_snapshot()), default=0)


@pytest.fixture
def own_daphne(own_broker, artifacts_dir):
    server = DaphneServer(artifacts_dir, MQTT_URL=own_broker.url).start()
    yield server
    server.stop()


def test_daphne_restart_clients_reconnect_resubscribe_and_match_a_fresh_subscriber(own_broker, own_daphne,
                                                                                   artifacts_dir):  # fmt: skip
    icu = make_ward("icu")
    make_device(DEVICE, ward=icu)
    cookie = session_cookie(make_user("watcher", ward=icu, can_command=False))
    bridge = BridgeProcess(own_broker.url, own_daphne.internal_url, artifacts_dir).start()
    pump = PumpClient(own_broker.url, DEVICE)
    clients = [ReconnectingSubscriber(own_daphne.url, cookie, DEVICE).connect() for _ in range(3)]
    fresh = None
    try:
        pump.publish("status", {"status": "online", "batteryLevel": 90})
        pump.publish("error", {"type": "bubble_detected", "severity": "high", "message": "Air in line"})
        wait_until(lambda: all(latest_seq(c) == current_seq() > 0 for c in clients), message="no live events")

        own_daphne.stop()
        stopped_at = time.monotonic()
        pump.publish("error", {"type": "bubble_cleared"})  # cleared while the clients are away
        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Occlusion downstream"})
        pump.publish("status", {"status": "online", "batteryLevel": 80})
        time.sleep(2.0)
        own_daphne.start()
        restarted_at = time.monotonic()
        wait_until(lambda: all(len(c.connected_at) >= 2 for c in clients), timeout=20,
                   message="the clients did not reconnect by themselves")  # fmt: skip
        pump.publish("status", {"status": "online", "batteryLevel": 70})
        wait_until(lambda: (seq := current_seq()) and all(latest_seq(c) == seq for c in clients),
                   timeout=15, message="reconnected clients did not catch up")  # fmt: skip
        fresh = ReconnectingSubscriber(own_daphne.url, cookie, DEVICE).connect()
        everyone = [fresh, *clients]  # a pump turning stale meanwhile is one more change: wait for all to agree
        wait_until(lambda: (seq := current_seq()) and all(latest_seq(c) == seq for c in everyone), timeout=15,
                   message="a fresh subscriber and the reconnected clients did not settle on one seq")  # fmt: skip
        expected = state_from_events(fresh.since_last_snapshot()).as_dict()
        for n, client in enumerate(clients):
            state = state_from_events(client.since_last_snapshot()).as_dict()
            assert state == expected, f"client {n} differs from a fresh subscriber: {differences(state, expected)}"
        assert not any(a["alarm"]["type"] == "bubble_detected" for _, a in fresh.since_last_snapshot()
                       if "alarm" in a), "the alarm cleared during the restart must be gone"  # fmt: skip
    finally:
        pump.close()
        for client in [*clients, *([fresh] if fresh else [])]:
            client.close()
        bridge.stop()
    reconnect_delays = [c.connected_at[1] - restarted_at for c in clients]
    logger.warning(
        "daphne restart: down %.1fs; %d clients reconnected %.2f–%.2fs after it was back and match a fresh subscriber",
        restarted_at - stopped_at, len(clients), min(reconnect_delays), max(reconnect_delays),
    )  # fmt: skip


def differences(mine: dict, theirs: dict) -> dict:
    """The differing top-level fields."""
    return {
        key: (mine.get(key), theirs.get(key)) for key in mine.keys() | theirs.keys() if mine.get(key) != theirs.get(key)
    }
