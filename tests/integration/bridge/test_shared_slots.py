"""Two bridge processes sharing the pumps (BRIDGE_SLOTS=2) on PostgreSQL, a real Mosquitto, QoS 1 load.

Pumps of both kinds in each slot: current firmware (QoS 1, `seq`+`bootId`) and the original firmware (QoS 0,
the legacy status topic, no `seq`: nothing but the order of its `timestamp`s tells its messages apart).
Every message is applied once and in each pump's order; after a SIGKILL of one bridge the other takes its
slot over: no acknowledged message lost, none applied twice, order kept, no `communication_lost` for pumps
that kept talking; restarted, it gets its slot back from the other (between two of its batches). A bridge
stalled (SIGSTOP) past its lease while the other takes its slot over commits nothing of that slot when it
resumes (the fence in each batch's transaction, `realtime/bridge/slots.py`).
"""

import json
import logging
import threading
import time
from collections import Counter
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from devices.models import BridgeLease, Device, DeviceEvent
from realtime.bridge.guard import message_digest
from realtime.bridge.slot_config import slot_of
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.pg_locks import lock_waiters
from tests.support.reliability import (
    TrafficPump,
    communication_lost_alarms,
    infusing_pumps,
    stored_status_seqs,
    wait_acknowledged_received,
)
from tests.support.shared_bridges import LEASE_S, SLOTS, pumps_per_slot, slot_owner, start_bridges

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the slots' leases are PostgreSQL's (test-postgres)"),
]
logger = logging.getLogger(__name__)

BOOT = "boot-shared"
# Each of the 6 pumps: 2 messages a second, half of them statuses (applied one by one, ~10 ms of CPU each on
# PostgreSQL): at a machine load of 12-14 on the 2 cores, 5 messages a second per pump outran the bridges.
INTERVAL_S = 0.5


class LegacyPump(threading.Thread):
    """The original firmware: QoS 0, status on `device/{id}/status` and progress, no `seq`, rising `timestamp`."""

    def __init__(self, broker_url: str, device_id: str, infusion_id: str, *, interval_s: float = INTERVAL_S) -> None:
        super().__init__(daemon=True, name=f"legacy-{device_id}")
        self.client = PumpClient(broker_url, device_id)
        self.device_id, self.infusion_id, self.interval_s = device_id, infusion_id, interval_s
        self.halt = threading.Event()
        self.tick = 0

    def run(self) -> None:
        while not self.halt.is_set():
            self.tick += 1
            tick = self.tick
            if tick % 2:
                body = {"infusionId": self.infusion_id, "progressPercent": 1.0, "flowRate": 2.0,
                        "timestamp": tick * 100}  # fmt: skip
                self.client.client.publish(f"devices/{self.device_id}/progress", json.dumps(body), qos=0)
            else:
                body = {"deviceId": self.device_id, "status": "running", "timestamp": tick * 100}
                self.client.client.publish(f"device/{self.device_id}/status", json.dumps(body), qos=0)
            time.sleep(self.interval_s)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)
        time.sleep(0.2)  # QoS 0: nothing to wait for but the socket
        self.client.close()


def legacy_status_timestamps(device_id: str) -> list[int]:
    """The original-firmware pump's applied statuses, in the order they were applied."""
    events = DeviceEvent.objects.filter(device__device_id=device_id, kind="mqtt.status", device_seq=None)
    return list(events.order_by("id").values_list("device_timestamp", flat=True))


def status_seqs_in_order(device_id: str) -> list[int]:
    events = DeviceEvent.objects.filter(device__device_id=device_id, kind="mqtt.status", boot_id=BOOT)
    return list(events.order_by("id").values_list("device_seq", flat=True))


def start_traffic(broker, chosen: dict[int, list[str]], running: dict[str, str]) -> tuple[list, list]:
    """Each slot's first pump talks as the original firmware, the others as the current one."""
    legacy = [LegacyPump(broker.url, ids[0], running[ids[0]]) for ids in chosen.values()]
    current = [TrafficPump(broker.url, device_id, running[device_id], boot_id=BOOT, interval_s=INTERVAL_S)
               for ids in chosen.values() for device_id in ids[1:]]  # fmt: skip
    for pump in [*legacy, *current]:
        pump.start()
    return current, legacy


def assert_once_and_in_order(current: list[TrafficPump], legacy: list[LegacyPump]) -> None:
    for pump in current:
        wait_acknowledged_received(pump, BOOT, timeout=60)
        twice = {seq: n for seq, n in stored_status_seqs(pump.device_id, BOOT).items() if n > 1}
        assert not twice, f"{pump.device_id}: statuses applied twice: {sorted(twice)[:5]}"
        order = status_seqs_in_order(pump.device_id)
        assert order == sorted(order), f"{pump.device_id}: statuses applied out of order: {order[:40]}"
        assert set(pump.acknowledged("status")) <= set(order), f"{pump.device_id}: acknowledged statuses lost"
    for pump in legacy:
        stamps = legacy_status_timestamps(pump.device_id)
        assert stamps, f"{pump.device_id}: no status of the original firmware applied"
        twice = {stamp: n for stamp, n in Counter(stamps).items() if n > 1}
        assert not twice, f"{pump.device_id} (no seq, QoS 0): statuses applied twice: {sorted(twice)[:5]}"
        assert stamps == sorted(stamps), f"{pump.device_id} (no seq, QoS 0): statuses out of order: {stamps[:40]}"


class SharedRun:
    """Two bridges sharing the pumps, and the pumps talking; `stop_traffic()` notes when they stopped."""

    def __init__(self, bridges: list[BridgeProcess], current: list[TrafficPump], legacy: list[LegacyPump]) -> None:
        self.bridges, self.current, self.legacy = bridges, current, legacy
        self.talking_from = self.talked_until = None

    def wait_all_heard(self, since) -> None:
        """Until every pump's progress since `since` is applied: from then on no pump may be alarmed silent
        (a `communication_lost` raised before, while the bridges booted, is cleared by that progress)."""
        device_ids = [pump.device_id for pump in [*self.current, *self.legacy]]
        wait_until(lambda: Device.objects.filter(device_id__in=device_ids, latest_progress_at__gt=since).count()
                   == len(device_ids), timeout=30, message="not every pump was heard")  # fmt: skip
        self.talking_from = timezone.now()

    def stop_traffic(self) -> None:
        if self.talked_until is None:
            self.talked_until = timezone.now()
            for pump in [*self.current, *self.legacy]:
                pump.stop()


@contextmanager
def two_bridges_under_load(broker, artifacts_dir):
    """Yield a `SharedRun`; after the test's body: every message once and in order, no false silence alarm."""
    chosen = pumps_per_slot(3)
    running = infusing_pumps([device_id for ids in chosen.values() for device_id in ids])
    bridges = start_bridges(broker.url, artifacts_dir)
    run = SharedRun(bridges, [], [])
    try:
        started = timezone.now()
        run.current, run.legacy = start_traffic(broker, chosen, running)
        run.wait_all_heard(started)
        yield run
        run.stop_traffic()
        assert_once_and_in_order(run.current, run.legacy)
    finally:
        run.stop_traffic()
        for bridge in bridges:
            bridge.stop()
    all_pumps = [device_id for ids in chosen.values() for device_id in ids]
    false_alarms = [(device_id, f"{raised_at:%H:%M:%S.%f}", message) for device_id, raised_at, message
                    in communication_lost_alarms(all_pumps, raised_by=run.talked_until)
                    if raised_at >= run.talking_from]  # fmt: skip
    assert false_alarms == [], f"pumps that kept talking were alarmed communication_lost: {false_alarms}"


def test_two_bridges_apply_every_message_once_in_each_pumps_order(broker, artifacts_dir):
    with two_bridges_under_load(broker, artifacts_dir):
        time.sleep(4)


def test_sigkill_one_bridge_the_other_takes_its_slot_over_and_hands_it_back(broker, artifacts_dir):
    """SIGKILL bridge 1 under load: bridge 0 takes slot 1 over; bridge 1 restarted gets it back."""
    with two_bridges_under_load(broker, artifacts_dir) as run:
        time.sleep(2)
        run.bridges[1].kill()
        killed = time.monotonic()
        wait_until(lambda: slot_owner(1).startswith("bridge-shared-0@") and BridgeLease.objects.filter(
            name="slot-1", connected_since__isnull=False).exists(), timeout=15, interval=0.02,
            message="the surviving bridge did not take slot 1 over")  # fmt: skip
        takeover_s = time.monotonic() - killed
        logger.warning("slot 1 taken over %.2fs after the SIGKILL (lease %ss)", takeover_s, LEASE_S)
        (artifacts_dir / "shared-slots-takeover.txt").write_text(f"takeover_s={takeover_s:.2f} lease_s={LEASE_S}\n")
        ticks_at_takeover = {pump.device_id: pump.tick for pump in run.legacy}
        time.sleep(2)  # the pumps keep talking, now all through the survivor
        restarted = time.monotonic()
        run.bridges[1].start(timeout=60)  # connected once it holds slot 1 again (Django boots ~10 s at load 20)
        wait_until(lambda: slot_owner(1).startswith("bridge-shared-1@"), message="slot 1 was not handed back")
        logger.warning("slot 1 handed back %.2fs after its bridge restarted", time.monotonic() - restarted)
        time.sleep(2)  # and through both again
        run.stop_traffic()
    for pump in run.legacy:  # the original firmware's statuses after the takeover are applied too
        assert max(legacy_status_timestamps(pump.device_id)) > ticks_at_takeover[pump.device_id] * 100


def other_pump_of_slot(slot: int, taken: list[str]) -> str:
    """A pump id of `slot` that none of the traffic pumps has."""
    return next(device_id for number in range(1, 1000) if (device_id := f"HOLD_{number:04d}") not in taken
                and slot_of(device_id, SLOTS) == slot)  # fmt: skip


@contextmanager
def receipt_held(device_pk: int, status: dict):
    """The receipt of the status message `status` (pump, BOOT, its seq, the digest of its bytes as the bridge will
    receive them) inserted in an open transaction of its own: a bridge claiming the same one waits for it, its batch
    in flight (nothing of the run applied yet). Rolled back by `release()` or at the end."""
    settings = connection.settings_dict
    digest = message_digest("status", json.dumps(status).encode())  # as PumpClient.publish sends it
    with psycopg.connect(host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                         password=settings["PASSWORD"] or None, dbname=settings["NAME"]) as holder:  # fmt: skip
        holder.execute("INSERT INTO devices_messagereceipt (device_id, boot_id, device_seq, digest, received_at) "
                       "VALUES (%s, %s, %s, %s, now())", (device_pk, BOOT, status["seq"], digest))  # fmt: skip
        yield holder.rollback
        holder.rollback()


def a_bridge_waits_on_a_lock() -> bool:
    return lock_waiters() > 0


def test_a_bridge_stalled_past_its_lease_commits_nothing_of_the_slot_taken_over(broker, artifacts_dir):
    """Bridge 1 stalls (SIGSTOP) with a batch in flight past its lease; bridge 0 takes slot 1 over and applies its
    pumps' newer messages; bridge 1 resumes: its batch must not be committed after them (the batch's fence).

    The batch is held in flight by a receipt the test holds uncommitted: bridge 1 claims a pump's receipt before it
    applies any message of the run, so the slot's messages queued behind it are in the batch, not yet applied.
    """
    with two_bridges_under_load(broker, artifacts_dir) as run:
        holder = make_device(other_pump_of_slot(1, [p.device_id for p in [*run.current, *run.legacy]]))
        pump = PumpClient(broker.url, holder.device_id)
        status = {"status": "testing", "bootId": BOOT, "timestamp": 1}
        try:
            first, second = {**status, "seq": 1}, {**status, "seq": 2}
            with receipt_held(holder.pk, first) as release_first, receipt_held(holder.pk, second) as release_second:
                pump.publish("status", first, qos=0)  # QoS 0: never redelivered to bridge 0
                wait_until(a_bridge_waits_on_a_lock, interval=0.01, message="bridge 1 never waited on the receipt")
                pump.publish("status", second, qos=0)  # first of the next batch
                time.sleep(1)  # the slot's pumps' messages queue behind it
                release_first()
                time.sleep(0.1)
                wait_until(a_bridge_waits_on_a_lock, interval=0.01, message="bridge 1's next batch never waited")
                run.bridges[1].pause()
                wait_until(lambda: slot_owner(1).startswith("bridge-shared-0@") and BridgeLease.objects.filter(
                    name="slot-1", connected_since__isnull=False).exists(), timeout=15, interval=0.02,
                    message="bridge 0 did not take slot 1 over from the stalled bridge")  # fmt: skip
                time.sleep(2)  # bridge 0 applies slot 1's pumps' newer messages
                release_second()  # (while bridge 1 waits on it, it holds none of the receipts bridge 0 claims)
                run.bridges[1].resume()
        finally:
            pump.close()
        wait_until(lambda: slot_owner(1).startswith("bridge-shared-1@"), timeout=30,
                   message="slot 1 was not handed back to bridge 1 after it resumed")  # fmt: skip
        time.sleep(1)
        run.stop_traffic()
        stale = DeviceEvent.objects.filter(device=holder, kind="mqtt.status", device_seq=2)
        assert not stale.exists(), "bridge 1 committed its stalled batch after bridge 0 had taken slot 1 over"
        slot_pumps = [pump.device_id for pump in [*run.current, *run.legacy] if slot_of(pump.device_id, SLOTS) == 1]
        restarted = DeviceEvent.objects.filter(device__device_id__in=slot_pumps, kind="pump.restarted")
        which = list(restarted.values_list("device__device_id", "payload"))
        assert not which, f"stale messages applied after newer ones made pumps look restarted: {which}"
