"""Snapshot plus events equals a fresh snapshot equals the database, across PostgreSQL, Redis, 2 Daphne, 2 bridges.

Two bridges share the pumps through slots (`realtime.bridge.slots`): one pump in each slot, so each bridge
applies one pump's random traffic (progress, status, alarms, completions, confirmations) and the holder of
the housekeeping lease reminds of acknowledged alarms every second, times out pending starts and ends
commands at their deadline. A nurse on Daphne B starts, cancels, commands and acknowledges. Both bridges wake
only B: A learns of every change from the change log alone (LISTEN/NOTIFY, its safety poll). Clients subscribe
to both pumps at random moments on A and on B, on Socket.IO and on the Channels endpoint. Per pump, each
client's snapshot + live events must equal a fresh snapshot, which must equal the database, the live events
in `seq` order without a gap or a duplicate; A's clients must have received live the changes of both bridges
and of B.
"""

import random
import time

import pytest
from django.db import close_old_connections, connection

from devices.models import BridgeStatus
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient
from tests.support.broker import MosquittoBroker
from tests.support.consistency import assert_consistent, subscribe_somehow
from tests.support.random_traffic import (
    every_event_logged,
    housekeeping_changes,
    lasting_alarm_acknowledged,
    nurse_traffic,
    pump_traffic,
    run_threads,
    stop_threads,
)
from tests.support.shared_bridges import bridge_name, pumps_per_slot, slot_owner, start_bridges
from tests.support.sio import BrowserSession

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="several processes need PostgreSQL (test-postgres)"),
]

TRAFFIC_S = 6.0
# After TRAFFIC_S the traffic goes on (subscribing no more clients) until every kind of event was logged on each
# pump and A's clients got live what `assert_seen_live_on_a` asks (a loaded Daphne B answered the nurses' requests
# in about 0.5 s: in 2 of 8 runs the one start of a pump came before A's first client and no command followed within
# TRAFFIC_S), for at most this long: coverage, not a bound on any latency (the assertions are the same either way).
MORE_S = 15.0
# All the one nurse's, on both Daphne: below her socket cap (SOCKETS_PER_PRINCIPAL, 20, counted across processes),
# with room for the fresh client that checks them.
MAX_CLIENTS = 10
# Escalations (60 s and 120 s by default) would go on changing the pumps while the test waits for them to settle
# on a slow run: they have tests of their own.
ESCALATION_S = "3600"
REMINDER_S = "1"  # acknowledged alarms still active alert again this soon: housekeeping's changes in the traffic


@pytest.fixture
def layout(tmp_path, artifacts_dir, redis_server, daphnes_on_redis):
    """Mosquitto, Daphne A and B on Redis, and two bridges sharing the pumps, both waking B."""
    broker = MosquittoBroker(tmp_path / "mosquitto", persistence=False).start()
    bridges = []
    try:
        daphne_a, daphne_b = daphnes_on_redis(2, MQTT_URL=broker.url)
        reminders = {"ALARM_REMINDER_HIGH_S": REMINDER_S, "ALARM_REMINDER_MEDIUM_S": REMINDER_S}
        bridges = start_bridges(broker.url, artifacts_dir, realtime_urls=(daphne_b.internal_url,) * 2,
                                ESCALATION_HIGH_S=ESCALATION_S, **reminders)  # fmt: skip
        yield broker, daphne_a, daphne_b
    finally:
        for bridge in bridges:
            bridge.stop()
        broker.stop()


def pumps_of_both_bridges() -> dict[int, str]:
    """One pump in each slot, each slot owned by its home bridge: {slot: device id}."""
    chosen = {slot: ids[0] for slot, ids in pumps_per_slot(1).items()}
    ward = make_ward("icu")
    for slot, device_id in chosen.items():
        make_device(device_id, ward=ward)
        assert slot_owner(slot).startswith(f"{bridge_name(slot)}@"), f"slot {slot}: {slot_owner(slot)!r}"
    make_user("nurse", ward=ward)
    return chosen


def test_subscribers_on_both_daphnes_see_both_bridges_and_bs_changes_consistently(layout):
    broker, daphne_a, daphne_b = layout
    chosen = pumps_of_both_bridges()
    device_ids = list(chosen.values())
    nurses_on_b = {device_id: BrowserSession(daphne_b.url, "nurse") for device_id in device_ids}
    cookie = next(iter(nurses_on_b.values())).cookie_header
    pumps = {device_id: PumpClient(broker.url, device_id) for device_id in device_ids}
    rng = random.Random(20261203)
    clients: list = []  # even numbers on A, odd on B
    try:
        for device_id in device_ids:
            lasting_alarm_acknowledged(pumps[device_id], nurses_on_b[device_id], device_id)
        traffic = [(pump_traffic, pumps[device_id], random.Random(n)) for n, device_id in enumerate(device_ids)]
        traffic += [(nurse_traffic, nurses_on_b[device_id], device_id, random.Random(100 + n))
                    for n, device_id in enumerate(device_ids)]  # fmt: skip
        stop, threads = run_threads(*traffic)
        try:
            deadline = time.monotonic() + TRAFFIC_S
            while time.monotonic() < deadline or (
                not (
                    len(clients) >= MAX_CLIENTS
                    and all(every_event_logged(device_id, clients) for device_id in device_ids)
                    and seen_on_a(clients, chosen)
                )
                and time.monotonic() < deadline + MORE_S
            ):
                time.sleep(rng.uniform(0.2, 0.8))
                if len(clients) < MAX_CLIENTS:
                    url = (daphne_a, daphne_b)[len(clients) % 2].url
                    clients.append(subscribe_somehow(url, cookie, len(clients), device_ids))
        finally:
            stop_threads(stop, threads)
    finally:
        for pump in pumps.values():
            pump.close()
    try:
        seen = {device_id: assert_consistent(daphne_a.url, cookie, clients, device_id, min_clients=MAX_CLIENTS,
                                             min_changes=30) for device_id in device_ids}  # fmt: skip
        on_a = clients[0::2]
        for slot, device_id in chosen.items():
            assert_seen_live_on_a(on_a, device_id, f"bridge {slot}")
    finally:
        for client in clients:
            client.close()
    close_old_connections()
    for slot, device_id in chosen.items():
        assert slot_owner(slot).startswith(f"{bridge_name(slot)}@"), f"slot {slot} changed hands during the traffic"
        assert housekeeping_changes(device_id).get("alarm.reminded"), f"{device_id}: no reminder in the traffic"
    applied = dict(BridgeStatus.objects.values_list("name", "stats__applied"))
    assert all((applied.get(bridge_name(slot)) or 0) > 30 for slot in chosen), f"messages applied per bridge: {applied}"
    every = set().union(*seen.values())
    traffic = set(events.DEVICE_EVENTS) - set(events.ADMINISTRATIVE_DEVICE_EVENTS)  # no pump deletes itself
    assert traffic <= every, f"event types never exercised: {traffic - every}"


def assert_seen_live_on_a(on_a: list, device_id: str, bridge: str) -> None:
    """A's clients got, after their snapshots, the pump's progress (its bridge's) and a start or a command made
    on B (only the nurse there makes a session pending or queues a command)."""
    live = live_on_a(on_a, device_id)
    assert any(event == events.DEVICE_PROGRESS for event, _ in live), f"{device_id}: no progress of {bridge} on A"
    made_on_b = [data["seq"] for event, data in live if made_by_the_nurse(event, data)]
    assert made_on_b, f"{device_id}: no start or command made on B reached A live"


def live_on_a(on_a: list, device_id: str) -> list[tuple[str, dict]]:
    """The pump's events A's clients got after their snapshots (a client not yet sent its snapshot: none)."""
    live = []
    for client in on_a:
        subscribed = client.events.named(events.STREAM_SUBSCRIBED, device_id=device_id)
        if subscribed:
            since = subscribed[0]["seq"]
            live += [(event, data) for event, data in client.events.device_events(device_id) if data["seq"] > since]
    return live


def seen_on_a(clients: list, chosen: dict[int, str]) -> bool:
    """Whether A's clients got live, so far, what `assert_seen_live_on_a` asks of each pump."""
    on_a = clients[0::2]
    return all(
        any(event == events.DEVICE_PROGRESS for event, _ in live) and any(made_by_the_nurse(*item) for item in live)
        for live in (live_on_a(on_a, device_id) for device_id in chosen.values())
    )


def made_by_the_nurse(event: str, data: dict) -> bool:
    if event == events.DEVICE_SESSION:
        return data["session"]["status"] == "pending"
    return event == events.DEVICE_COMMAND and data["command"]["state"] == "queued"
