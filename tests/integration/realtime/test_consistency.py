"""Snapshot plus events equals a fresh snapshot equals the database, under real traffic.

A pump publishes through Mosquitto and the real bridge; a signed-in nurse starts, cancels and
acknowledges through Daphne's HTTP endpoints (so Daphne-side changes share the pump's `seq`); the bridge's
housekeeping meanwhile reminds of acknowledged alarms (every second here), times out pending starts and
ends commands at their deadline; clients subscribe at random moments meanwhile, on Socket.IO and on the
Channels endpoint. Every one of these changes reaches screens by the one road: the change log, read by
Daphne's publisher.
"""

import functools
import random
import threading
import time

import pytest
from django.db import close_old_connections
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from devices.states import AlarmState
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient
from tests.support.consistency import assert_consistent, subscribe_somehow
from tests.support.random_traffic import (
    every_event_logged,
    housekeeping_changes,
    lasting_alarm_acknowledged,
    nurse_traffic,
    pump_traffic,
    run_threads,
)
from tests.support.sio import BrowserSession

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DEVICE = "PUMP_0001"
UNORDERED_DEVICE = "PUMP_0002"  # never given an order: progress, stops and alarms without a session
TRAFFIC_S = 6.0
# The traffic goes on after TRAFFIC_S (subscribing more clients) until every kind of event was logged, for at
# most this long: a completion needs a session that went running first, which takes longer where the bridge is
# slower (PostgreSQL on a loaded machine). Coverage, not a bound on any latency: the assertions are the same.
MORE_S = 20.0
# Subscribers opened at random moments, all the one nurse's: below her socket cap (SOCKETS_PER_PRINCIPAL, 20, both
# transports counted), with room for the fresh client that checks them (the longer coverage wait opened up to 50).
MAX_CLIENTS = 15
REMINDER_S = "1"  # acknowledged alarms still active alert again this soon: housekeeping's changes in the traffic


@pytest.fixture(scope="module")
def realtime_bridge(realtime_broker, daphne_server, django_db_blocker, artifacts_dir):
    """The real bridge, its housekeeping reminding of acknowledged alarms every second."""
    with django_db_blocker.unblock():
        reminders = {"ALARM_REMINDER_HIGH_S": REMINDER_S, "ALARM_REMINDER_MEDIUM_S": REMINDER_S}
        process = BridgeProcess(realtime_broker.url, daphne_server.internal_url, artifacts_dir, **reminders).start()
    yield process
    process.stop()


def test_snapshot_plus_events_equals_fresh_snapshot_equals_database(daphne_server, realtime_broker,
                                                                    realtime_bridge):  # fmt: skip
    icu = make_ward("icu")
    make_device(DEVICE, ward=icu)
    make_user("nurse", ward=icu)
    browser = BrowserSession(daphne_server.url, "nurse")
    pump = PumpClient(realtime_broker.url, DEVICE)
    rng = random.Random(20261128)
    clients: list = []
    lasting_alarm_acknowledged(pump, browser, DEVICE)
    stop, threads = run_threads((pump_traffic, pump, rng), (nurse_traffic, browser, DEVICE, random.Random(7)))
    try:
        deadline = time.monotonic() + TRAFFIC_S
        while time.monotonic() < deadline or (
            not every_event_logged(DEVICE, clients) and time.monotonic() < deadline + MORE_S
        ):
            time.sleep(rng.uniform(0.2, 0.8))
            if len(clients) < MAX_CLIENTS:
                clients.append(subscribe_somehow(daphne_server.url, browser.cookie_header, len(clients), [DEVICE]))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        pump.close()
    try:
        seen = assert_consistent(daphne_server.url, browser.cookie_header, clients, DEVICE)
    finally:
        for client in clients:
            client.close()
    assert InfusionSession.objects.exists(), "the nurse's starts (Daphne-side changes) were part of the traffic"
    assert Alarm.objects.filter(acknowledged_at__isnull=False).exists() or housekeeping_changes(DEVICE).get(
        "alarm.reminded"), "acknowledgements were part of the traffic"  # fmt: skip
    assert housekeeping_changes(DEVICE).get("alarm.reminded"), (
        f"housekeeping's reminders were part of the traffic: {housekeeping_changes(DEVICE)}")  # fmt: skip
    traffic = set(events.DEVICE_EVENTS) - set(events.ADMINISTRATIVE_DEVICE_EVENTS)  # no pump deletes itself
    assert traffic <= seen, f"event types never exercised: {traffic - seen}"


def unordered_pump_traffic(pump: PumpClient, rng: random.Random, stop: threading.Event) -> None:
    """A pump nobody ordered anything on: it infuses, pauses, stops and alarms on its own (v1.1 snapshot = live)."""
    delivered = 0.0
    while not stop.is_set():
        choice = rng.random()
        if choice < 0.5:
            delivered += 0.05
            pump.publish("progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": round(delivered, 2),
                                      "timeRemainingMin": 20.0})  # fmt: skip
        elif choice < 0.6:
            pump.publish("progress", {"status": "paused", "flowRate": 0.0, "deliveredVolumeMl": round(delivered, 2)})
        elif choice < 0.7:
            pump.publish("status", {"status": rng.choice(["stopped", "idle", "online"]),
                                    "batteryLevel": rng.randint(10, 100)})  # fmt: skip
        elif choice < 0.8:
            pump.publish("error", {"type": "occlusion", "severity": rng.choice(["high", "low"])})
        elif choice < 0.9:
            pump.publish("error", {"type": "occlusion_cleared"})
        else:
            pump.publish("actions", {"action": "MANUAL_STOP"})
        close_old_connections()
        time.sleep(rng.uniform(0.005, 0.03))


def unordered_nurse_traffic(browser: BrowserSession, rng: random.Random, stop: threading.Event) -> None:
    """A nurse stops the unordered infusion (again and again: one STOP at a time) and acknowledges alarms.

    Until a first STOP is accepted she only tries to stop: housekeeping's reminders keep an alarm to
    acknowledge most of the time, and a slow run could otherwise end without any command in its traffic.
    """
    stopped_once = False
    while not stop.is_set():
        close_old_connections()
        alarm = Alarm.objects.filter(device__device_id=UNORDERED_DEVICE, state=AlarmState.ACTIVE,
                                     acknowledged_at__isnull=True).first()  # fmt: skip
        if alarm is not None and stopped_once and rng.random() < 0.5:
            browser.post(f"/api/alarms/{alarm.pk}/acknowledge/", {}, expect=(200, 404))
        else:
            answer = browser.post(f"/api/devices/{UNORDERED_DEVICE}/commands/",
                                  {"command": "stop", "infusionId": "", "askedAt": timezone.now().isoformat()},
                                  expect=(202, 409))  # fmt: skip
            stopped_once = stopped_once or answer == 202
        time.sleep(rng.uniform(0.05, 0.2))


def test_snapshot_plus_events_for_a_pump_without_a_session(daphne_server, realtime_broker, realtime_bridge):
    """Progress, stops, alarms and commands with no session: a late subscriber sees what live subscribers see."""
    icu = make_ward("icu")
    make_device(UNORDERED_DEVICE, ward=icu)
    make_user("nurse", ward=icu)
    browser = BrowserSession(daphne_server.url, "nurse")  # a fresh database: the first test's sockets are gone
    pump = PumpClient(realtime_broker.url, UNORDERED_DEVICE)
    rng = random.Random(20261202)
    clients: list = []
    lasting_alarm_acknowledged(pump, browser, UNORDERED_DEVICE)
    stop, threads = run_threads((unordered_pump_traffic, pump, rng), (unordered_nurse_traffic, browser,
                                                                      random.Random(11)))  # fmt: skip
    subscribe = functools.partial(subscribe_somehow, daphne_server.url, browser.cookie_header,
                                  device_ids=[UNORDERED_DEVICE])  # fmt: skip
    try:
        deadline = time.monotonic() + TRAFFIC_S
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.2, 0.8))
            clients.append(subscribe(len(clients)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        pump.close()
    try:
        seen = assert_consistent(daphne_server.url, browser.cookie_header, clients, UNORDERED_DEVICE)
    finally:
        for client in clients:
            client.close()
    assert not InfusionSession.objects.filter(device__device_id=UNORDERED_DEVICE).exists()
    assert housekeeping_changes(UNORDERED_DEVICE).get("alarm.reminded"), (
        f"housekeeping's reminders were part of the traffic: {housekeeping_changes(UNORDERED_DEVICE)}")  # fmt: skip
    assert {events.DEVICE_PROGRESS, events.DEVICE_COMMAND, events.DEVICE_ALARM, events.DEVICE_STATUS} <= seen
