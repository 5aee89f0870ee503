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

from devices.models import Alarm, ChangeLogEntry, Command, Device, DeviceEvent, InfusionSession
from devices.states import ACTIVE_SESSION_STATUSES, COMMAND_UNSETTLED_STATES, SESSION_ON_PUMP_STATUSES, AlarmState
from protocol import events
from realtime.sio.snapshot import read_snapshot
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.processes import subprocess_env
from tests.support.sio import BrowserSession, ChannelsClient, StreamClient, state_from_events

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
HEARTBEAT_TIMEOUT_S = float(subprocess_env()["HEARTBEAT_TIMEOUT_S"])  # the bridge's, as the tests start it
REMINDER_S = "1"  # acknowledged alarms still active alert again this soon: housekeeping's changes in the traffic
# Never cleared by the traffic: the nurse acknowledges it, housekeeping reminds of it a second later, again and again.
LASTING_ALARM = {"type": "door_open", "severity": "high"}
HOUSEKEEPING_KINDS = ("alarm.reminded", "session.timed_out", "command.failed", "command.expired")


@pytest.fixture(scope="module")
def realtime_bridge(realtime_broker, daphne_server, django_db_blocker, artifacts_dir):
    """The real bridge, its housekeeping reminding of acknowledged alarms every second."""
    with django_db_blocker.unblock():
        reminders = {"ALARM_REMINDER_HIGH_S": REMINDER_S, "ALARM_REMINDER_MEDIUM_S": REMINDER_S}
        process = BridgeProcess(realtime_broker.url, daphne_server.internal_url, artifacts_dir, **reminders).start()
    yield process
    process.stop()


def every_event_logged(device_id: str = DEVICE) -> bool:
    """Whether the traffic has produced every kind of device event yet (a slower engine needs longer)."""
    close_old_connections()
    logged = set(ChangeLogEntry.objects.filter(device__device_id=device_id).values_list("event", flat=True))
    return set(events.DEVICE_EVENTS) <= logged


def lasting_alarm_acknowledged(pump: PumpClient, browser: BrowserSession, device_id: str) -> None:
    """Raise LASTING_ALARM and acknowledge it: housekeeping reminds of it during the traffic (then again if
    the nurse acknowledges it again)."""
    pump.publish("error", LASTING_ALARM)
    alarm = wait_until(lambda: Alarm.objects.filter(device__device_id=device_id, type=LASTING_ALARM["type"],
                                                    state=AlarmState.ACTIVE).first(), timeout=10,
                       message="the lasting alarm was never raised")  # fmt: skip
    browser.post(f"/api/alarms/{alarm.pk}/acknowledge/", {}, expect=(200,))


def housekeeping_changes(device_id: str) -> dict[str, int]:
    """How many of the pump's changes the bridge's housekeeping made, by kind (from the audit log)."""
    kinds = DeviceEvent.objects.filter(device__device_id=device_id, kind__in=HOUSEKEEPING_KINDS)
    return {kind: kinds.filter(kind=kind).count() for kind in HOUSEKEEPING_KINDS if kinds.filter(kind=kind).exists()}


def pump_traffic(pump: PumpClient, rng: random.Random, stop: threading.Event) -> None:
    """What a pump says: progress, status and battery, alarms raised and cleared, confirmations."""
    step = 0
    while not stop.is_set():
        step += 1
        choice = rng.random()
        if choice < 0.45:
            session = InfusionSession.objects.filter(device__device_id=DEVICE, status="running").first()
            infusion_id = session.infusion_id if session else None
            pump.publish("progress", {"progressPercent": step % 100, "timeRemainingMin": 10.0, "flowRate": 2.0,
                                      "status": "running", "infusionId": infusion_id})  # fmt: skip
        elif choice < 0.6:
            pump.publish("status", {"status": "online", "batteryLevel": rng.randint(10, 100)})
        elif choice < 0.75:
            pump.publish("error", {"type": rng.choice(["occlusion", "bubble_detected"]), "severity": "high"})
        elif choice < 0.85:
            pump.publish("error", {"type": rng.choice(["occlusion_cleared", "bubble_cleared"]), "severity": "info"})
        elif choice < 0.9:
            completion = ("completion", {"completed": True, "summary": {"totalVolumeMl": 30}})
            pump.publish(*rng.choice([("status", {"status": "paused"}), ("status", {"status": "running"}), completion]))
        else:
            confirm_pending(pump)
        close_old_connections()
        time.sleep(rng.uniform(0.005, 0.03))


def confirm_pending(pump: PumpClient) -> None:
    session = InfusionSession.objects.filter(device__device_id=DEVICE, status="pending").first()
    if session is not None:
        pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True, "parameters": {
            "flowRateMlMin": session.flow_rate_ml_min, "plannedVolumeMl": session.planned_volume_ml,
            "plannedTimeMin": session.planned_time_min, "bolusEnabled": False, "bolusVolumeMl": 0}})  # fmt: skip


def nurse_traffic(browser: BrowserSession, rng: random.Random, stop: threading.Event) -> None:
    """What a nurse does in Daphne: start an infusion, cancel a pending one, acknowledge alarms."""
    while not stop.is_set():
        close_old_connections()
        active = InfusionSession.objects.filter(device__device_id=DEVICE, status__in=ACTIVE_SESSION_STATUSES).first()
        alarm = Alarm.objects.filter(device__device_id=DEVICE, state=AlarmState.ACTIVE,
                                     acknowledged_at__isnull=True).first()  # fmt: skip
        if alarm is not None and rng.random() < 0.5:
            browser.post(f"/api/alarms/{alarm.pk}/acknowledge/", {}, expect=(200, 404))
        elif active is None:
            browser.post(f"/api/devices/{DEVICE}/infusions/", {"rate_ml_h": 120, "volume_ml": 30, "drug": "Saline",
                                                               "patient_skipped": "on", "confirm": "start"},
                         expect=(201, 409))  # fmt: skip
        elif active.status == "pending" and rng.random() < 0.3:
            browser.post(f"/api/infusions/{active.infusion_id}/cancel/", {}, expect=(200, 409))
        elif active.status in SESSION_ON_PUMP_STATUSES and rng.random() < 0.2:
            browser.post(f"/api/devices/{DEVICE}/commands/", {"command": rng.choice(["pause", "resume", "stop"])},
                         expect=(202, 409))  # fmt: skip
        time.sleep(rng.uniform(0.05, 0.2))


def run_threads(*targets) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [threading.Thread(target=target, args=(*args, stop), daemon=True) for target, *args in targets]
    for thread in threads:
        thread.start()
    return stop, threads


def db_state(device_id: str = DEVICE) -> dict:
    """What the database holds, read directly (not through the snapshot code)."""
    close_old_connections()
    device = Device.objects.get(device_id=device_id)
    active = InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).first()
    alarms = set(Alarm.objects.filter(device=device, state=AlarmState.ACTIVE).values_list("pk", flat=True))
    return {"seq": device.event_seq, "session": active.infusion_id if active else None, "alarms": alarms,
            "battery": device.battery_level, "pumpState": device.pump_state}  # fmt: skip


def summary(state) -> dict:
    return {"seq": state.seq, "session": state.session["infusionId"] if state.session else None,
            "alarms": set(state.alarms), "battery": state.status["batteryLevel"],
            "pumpState": state.status["pumpState"]}  # fmt: skip


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
    stop, threads = run_threads((pump_traffic, pump, rng), (nurse_traffic, browser, random.Random(7)))
    try:
        deadline = time.monotonic() + TRAFFIC_S
        while time.monotonic() < deadline or (not every_event_logged() and time.monotonic() < deadline + MORE_S):
            time.sleep(rng.uniform(0.2, 0.8))
            if len(clients) < MAX_CLIENTS:
                clients.append(subscribe_somehow(daphne_server.url, browser.cookie_header, len(clients)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        pump.close()
    try:
        seen = assert_consistent(daphne_server.url, browser.cookie_header, clients)
    finally:
        for client in clients:
            client.close()
    assert InfusionSession.objects.exists(), "the nurse's starts (Daphne-side changes) were part of the traffic"
    assert Alarm.objects.filter(acknowledged_at__isnull=False).exists() or housekeeping_changes(DEVICE).get(
        "alarm.reminded"), "acknowledgements were part of the traffic"  # fmt: skip
    assert housekeeping_changes(DEVICE).get("alarm.reminded"), (
        f"housekeeping's reminders were part of the traffic: {housekeeping_changes(DEVICE)}")  # fmt: skip
    assert set(events.DEVICE_EVENTS) <= seen, f"event types never exercised: {set(events.DEVICE_EVENTS) - seen}"


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
            answer = browser.post(f"/api/devices/{UNORDERED_DEVICE}/commands/", {"command": "stop"},
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
                                  device_id=UNORDERED_DEVICE)  # fmt: skip
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


def subscribe_somehow(url: str, cookie: str, n: int, device_id: str = DEVICE):
    if n % 3 == 2:
        client = ChannelsClient(url, cookie=cookie)
        client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": device_id})
        return client
    client = StreamClient(url, cookie=cookie).connect()
    client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": device_id})
    return client


def assert_consistent(url: str, cookie: str, clients: list, device_id: str = DEVICE) -> set[str]:
    """Every client's snapshot + events equals a fresh snapshot equals the database; returns the event names seen."""
    final = wait_until(lambda: stable_seq(device_id), timeout=45, message="the pump's seq never settled")
    fresh = StreamClient(url, cookie=cookie).connect()
    try:
        fresh.subscribe(device_id)
        fresh_state = state_from_events(wait_for_seq(fresh, final, device_id))
    finally:
        fresh.close()
    snapshot = read_snapshot(device_id)
    assert snapshot.seq == final
    assert summary(fresh_state) == db_state(device_id), "a fresh subscriber's snapshot must equal the database"
    seen: set[str] = set()
    for n, client in enumerate(clients):
        try:
            received = wait_for_seq(client, final, device_id)
        except AssertionError as exc:
            got = [(e, d["seq"]) for e, d in client.events.device_events(device_id)]
            errors = client.events.named(events.ERROR)
            raise AssertionError(f"client {n} ({type(client).__name__}) never got seq {final}: subscribed "
                                 f"{client.events.named(events.STREAM_SUBSCRIBED)}, last received {got[-8:]}, "
                                 f"errors {errors}") from exc  # fmt: skip
        seen |= {event for event, _ in received}
        seqs = [data["seq"] for event, data in received]
        snapshot_seq = client.events.named(events.STREAM_SUBSCRIBED)[0]["seq"]
        live = [seq for seq in seqs if seq > snapshot_seq]
        assert live == sorted(live) and set(live) == set(range(snapshot_seq + 1, final + 1)), (
            f"client {n} missed or reordered events after its snapshot at {snapshot_seq}: {live}"
        )
        mine, theirs = state_from_events(received).as_dict(), fresh_state.as_dict()
        assert mine == theirs, (
            f"client {n}: snapshot + events differs from a fresh snapshot: {differences(mine, theirs)}"
        )
    assert len(clients) >= 5, "clients subscribed at several moments"
    assert final > 50, f"too little traffic to prove anything ({final} changes)"
    return seen


def differences(mine: dict, theirs: dict) -> dict:
    """The differing fields, one level into nested dicts."""
    diff = {}
    for key in mine.keys() | theirs.keys():
        a, b = mine.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
            if inner:
                diff[key] = inner
        elif a != b:
            diff[key] = (a, b)
    return diff


def stable_seq(device_id: str = DEVICE) -> int | None:
    """The pump's seq once nothing is left that time alone would change: no command under way (each ends at its
    deadline), no pending start (it times out), and no change for longer than a silence takes to be alarmed."""
    close_old_connections()
    if Command.objects.filter(device__device_id=device_id, state__in=COMMAND_UNSETTLED_STATES).exists():
        return None
    if InfusionSession.objects.filter(device__device_id=device_id, status="pending").exists():
        return None
    first = Device.objects.get(device_id=device_id).event_seq
    time.sleep(HEARTBEAT_TIMEOUT_S + 0.5)
    close_old_connections()
    return first if Device.objects.get(device_id=device_id).event_seq == first else None


def wait_for_seq(client, seq: int, device_id: str = DEVICE) -> list[tuple[str, dict]]:
    client.events.wait_for(lambda e, d: e.startswith("device:") and d.get("deviceId") == device_id
                           and d.get("seq") == seq, timeout=10)  # fmt: skip
    received = -1  # the rest of the events carrying that seq: a snapshot sends several, one by one
    while received != len(client.events.device_events(device_id)):
        received = len(client.events.device_events(device_id))
        time.sleep(0.2)
    return client.events.device_events(device_id)
