"""Helpers of the reliability tests: pumps infusing in the database, and a pump publishing QoS 1 traffic it counts."""

import json
import threading
import time
from collections import Counter

from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, BridgeStatus, DeadLetter, Device, DeviceEvent, MessageReceipt
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from protocol import events
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until
from tests.support.sio import EventLog, InOrderClient


def infusing_pumps(device_ids: list[str], *, ward_code: str = "icu") -> dict[str, str]:
    """Register the pumps and give each a confirmed, running infusion; returns {deviceId: infusionId}."""
    ward = make_ward(ward_code)
    nurse = make_user(f"nurse-{ward_code}", ward=ward)
    running = {}
    for device_id in device_ids:
        make_device(device_id, ward=ward)
        session = infusion_start(device_id=device_id, order=make_order(), user=nurse)
        with transaction.atomic():  # as the bridge applies a confirmation: under the pump's row lock
            infusion_confirm(device=device_lock(device_id=device_id), infusion_id=session.infusion_id, confirmed=True,
                             parameters=None, confirmation={"confirmed": True})  # fmt: skip
        running[device_id] = session.infusion_id
    return running


class TrafficPump(threading.Thread):
    """A pump publishing at QoS 1 every `interval_s`: progress, then a `running` status, alternately, with seq.

    Every message carries `seq` and `bootId`, so the test can ask the database which ones arrived.
    `acknowledged()` gives the seqs whose PUBACK the pump received.
    """

    def __init__(self, broker_url: str, device_id: str, infusion_id: str, *, boot_id: str, interval_s: float = 0.1):
        super().__init__(daemon=True, name=f"traffic-{device_id}")
        self.client = PumpClient(broker_url, device_id, persistent=True)
        self.device_id, self.infusion_id, self.boot_id, self.interval_s = device_id, infusion_id, boot_id, interval_s
        self.sent: list[tuple[str, int, int]] = []  # (kind, seq, mid)
        self.acked_mids: set[int] = set()  # PUBACKs received (also of messages queued while disconnected)
        self.client.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked_mids.add(mid)
        self.halt = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self.halt.is_set():
            seq += 1
            kind = "progress" if seq % 2 else "status"
            body = {"seq": seq, "bootId": self.boot_id, "timestamp": seq * 100}
            body |= {"infusionId": self.infusion_id, "progressPercent": 1.0, "flowRate": 2.0} if kind == "progress" \
                else {"status": "running"}  # fmt: skip
            info = self.client.client.publish(f"devices/{self.device_id}/{kind}", json.dumps(body), qos=1)
            self.sent.append((kind, seq, info.mid))
            time.sleep(self.interval_s)

    def stop(self, *, drain_s: float = 15.0) -> None:
        """Stop publishing and give queued messages time to be acknowledged (paho resends them after a reconnect)."""
        self.halt.set()
        self.join(timeout=5)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and not all(mid in self.acked_mids for _, _, mid in self.sent):
            time.sleep(0.05)
        self.client.close()

    def acknowledged(self, kind: str | None = None) -> list[int]:
        return [seq for k, seq, mid in self.sent if mid in self.acked_mids and (kind is None or k == kind)]


def stored_status_seqs(device_id: str, boot_id: str) -> Counter:
    """How many times each status `seq` was applied (audited as a DeviceEvent)."""
    events = DeviceEvent.objects.filter(device__device_id=device_id, kind="mqtt.status", boot_id=boot_id)
    return Counter(events.values_list("device_seq", flat=True))


def received_seqs(device_id: str, boot_id: str) -> set[int]:
    """Every `seq` (any kind) the bridge recorded a receipt for."""
    receipts = MessageReceipt.objects.filter(device__device_id=device_id, boot_id=boot_id)
    return set(receipts.values_list("device_seq", flat=True))


def wait_acknowledged_received(pump: "TrafficPump", boot_id: str, *, timeout: float) -> None:
    """Until every message the broker acknowledged to `pump` has its receipt in the database; else fail saying
    how many are missing (some seqs), the dead letters and each bridge's heartbeat and backlog (`inbox`)."""
    acked = set(pump.acknowledged())
    try:
        wait_until(lambda: acked <= received_seqs(pump.device_id, boot_id), timeout=timeout,
                   message=f"{pump.device_id}: not every acknowledged message reached the database")  # fmt: skip
    except AssertionError as exc:
        missing = sorted(acked - received_seqs(pump.device_id, boot_id))
        rows = BridgeStatus.objects.values_list("name", "heartbeat_at", "stats")
        stats = [(f"{name} heartbeat {heartbeat:%H:%M:%S.%f} now {timezone.now():%H:%M:%S.%f}",
                  {key: value for key, value in stats.items() if key != "metrics"})
                 for name, heartbeat, stats in rows]  # fmt: skip
        dead = list(DeadLetter.objects.values_list("reason", "detail")[:5])
        raise AssertionError(f"{exc}: {len(missing)} of {len(acked)}, e.g. {missing[:10]}; dead letters {dead}; "
                             f"bridges {stats}") from None  # fmt: skip


def communication_lost_alarms(device_ids: list[str], *, raised_by=None) -> list:
    """The `communication_lost` alarms of these pumps (raised by `raised_by` when given), as (pump, raised_at,
    message)."""
    alarms = Alarm.objects.filter(device__device_id__in=device_ids, type="communication_lost")
    if raised_by is not None:
        alarms = alarms.filter(raised_at__lte=raised_by)
    return list(alarms.values_list("device__device_id", "raised_at", "message"))


def device_pk(device_id: str) -> int:
    return Device.objects.get(device_id=device_id).pk


class ReconnectingSubscriber:
    """A python-socketio client as a browser runs it: reconnects with backoff and subscribes again on every connect.

    Its events are recorded in arrival order (`InOrderClient`, as every `StreamClient`'s): with python-engineio's
    thread per message, a snapshot event may be recorded before the `stream:subscribed` it follows, and
    `since_last_snapshot` then leaves it out (ci3, 2026-12-05, at a load of 15-18: a fresh subscriber's state lacked
    the active occlusion that the reconnected clients' snapshots held at the same `seq`; the snapshot reads alarms
    with one query, and the same test passed 6 of 6 times on a quieter machine)."""

    def __init__(self, base_url: str, cookie: str, device_id: str) -> None:
        self.base_url, self.cookie, self.device_id = base_url, cookie, device_id
        self.events = EventLog()
        self.connected_at: list[float] = []
        self.disconnected_at: list[float] = []
        self.client = InOrderClient(reconnection=True, reconnection_delay=0.25, reconnection_delay_max=2.0,
                                      randomization_factor=0.5)  # fmt: skip
        self.client.on("*", self.events.append)
        self.client.on("connect", self._connected)
        self.client.on("disconnect", lambda *args: self.disconnected_at.append(time.monotonic()))

    def _connected(self) -> None:
        self.connected_at.append(time.monotonic())
        self.client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": self.device_id})

    def connect(self) -> "ReconnectingSubscriber":
        self.client.connect(self.base_url, headers={"Cookie": self.cookie}, transports=["websocket"], wait_timeout=5)
        return self

    def since_last_snapshot(self) -> list[tuple[str, dict]]:
        """This pump's events from the latest `stream:subscribed` on (a client starts over at each snapshot)."""
        items = list(self.events.items)
        starts = [n for n, (name, data) in enumerate(items) if name == events.STREAM_SUBSCRIBED]
        tail = items[starts[-1] :] if starts else []
        return [
            (name, data) for name, data in tail if name.startswith("device:") and data.get("deviceId") == self.device_id
        ]

    def close(self) -> None:
        self.client.disconnect()
