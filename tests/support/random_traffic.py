"""Random traffic on one pump for the consistency tests: what the pump says over MQTT and what a nurse does.

The pump publishes progress, status and battery, alarms raised and cleared, completions and confirmations
(through Mosquitto to whichever bridge owns it); the nurse starts, cancels, commands and acknowledges through
a Daphne's HTTP endpoints; LASTING_ALARM, acknowledged once, keeps the bridge's housekeeping reminding.
"""

import random
import threading
import time

from django.db import close_old_connections, connection
from django.utils import timezone

from devices.models import Alarm, ChangeLogEntry, DeviceEvent, InfusionSession
from devices.states import ACTIVE_SESSION_STATUSES, SESSION_ON_PUMP_STATUSES, AlarmState
from protocol import events
from tests.support.bridge import PumpClient, wait_until
from tests.support.sio import BrowserSession

# Never cleared by the traffic: the nurse acknowledges it, housekeeping reminds of it a second later, again and again.
LASTING_ALARM = {"type": "door_open", "severity": "high"}
HOUSEKEEPING_KINDS = ("alarm.reminded", "session.timed_out", "command.failed", "command.expired")


def every_event_logged(device_id: str, clients: list) -> bool:
    """Whether the traffic has produced every kind of device event yet (a slower engine needs longer), among the
    pump's changes after the first client's snapshot of it (False until that is in): what the clients received live.
    Counted from the start, the lasting alarm's `device:error`, logged before any client subscribed, stood for its
    kind; of the pump's errors (about eight a second, raised or cleared at random) its alarm budget passes about one a
    second, and in one run no raise passed while clients listened: none received a `device:error` (ci56, "event types
    never exercised")."""
    subscribed = clients[0].events.named(events.STREAM_SUBSCRIBED, device_id=device_id) if clients else []
    if not subscribed:
        return False
    close_old_connections()
    changes = ChangeLogEntry.objects.filter(device_code=device_id, seq__gt=subscribed[0]["seq"])
    logged = set(changes.values_list("event", flat=True))
    return set(events.DEVICE_EVENTS) - set(events.ADMINISTRATIVE_DEVICE_EVENTS) <= logged


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
            session = InfusionSession.objects.filter(device__device_id=pump.device_id, status="running").first()
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
    session = InfusionSession.objects.filter(device__device_id=pump.device_id, status="pending").first()
    if session is not None:
        pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True, "parameters": {
            "flowRateMlMin": session.flow_rate_ml_min, "plannedVolumeMl": session.planned_volume_ml,
            "plannedTimeMin": session.planned_time_min, "bolusEnabled": False, "bolusVolumeMl": 0}})  # fmt: skip


def nurse_traffic(browser: BrowserSession, device_id: str, rng: random.Random, stop: threading.Event) -> None:
    """What a nurse does in Daphne: start an infusion, cancel a pending one, command, acknowledge alarms."""
    while not stop.is_set():
        close_old_connections()
        active = InfusionSession.objects.filter(device__device_id=device_id,
                                                status__in=ACTIVE_SESSION_STATUSES).first()  # fmt: skip
        alarm = Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE,
                                     acknowledged_at__isnull=True).first()  # fmt: skip
        if alarm is not None and rng.random() < 0.5:
            browser.post(f"/api/alarms/{alarm.pk}/acknowledge/", {}, expect=(200, 404))
        elif active is None:
            browser.post(f"/api/devices/{device_id}/infusions/", {"rate_ml_h": 120, "volume_ml": 30,
                                                                  "drug": "Saline", "patient_skipped": "on",
                                                                  "confirm": "start"}, expect=(201, 409))  # fmt: skip
        elif active.status == "pending" and rng.random() < 0.3:
            browser.post(f"/api/infusions/{active.infusion_id}/cancel/", {}, expect=(200, 409))
        elif active.status in SESSION_ON_PUMP_STATUSES and rng.random() < 0.2:
            browser.post(f"/api/devices/{device_id}/commands/", {"command": rng.choice(["pause", "resume", "stop"]),
                                                                 "infusionId": active.infusion_id,
                                                                 "askedAt": timezone.now().isoformat()},
                         expect=(202, 409))  # fmt: skip
        time.sleep(rng.uniform(0.05, 0.2))


def run_threads(*targets) -> tuple[threading.Event, list[threading.Thread]]:
    """Start each `(target, *args)` as a daemon thread called `target(*args, stop)`; returns (stop, threads)."""
    stop = threading.Event()
    threads = [threading.Thread(target=_closing(target), args=(*args, stop), daemon=True) for target, *args in targets]
    for thread in threads:
        thread.start()
    return stop, threads


def _closing(target):
    """`target`, then this thread's database connection closed (else it outlives the test's database)."""

    def run(*args) -> None:
        try:
            target(*args)
        finally:
            connection.close()

    return run


def stop_threads(stop: threading.Event, threads: list[threading.Thread]) -> None:
    stop.set()
    for thread in threads:
        thread.join(10)
