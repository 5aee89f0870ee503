"""Retained statuses replayed by the real broker on every bridge restart: the digest upsert and the receipts keep
each applied once, and a redelivered copy inside one burst is a duplicate (real Mosquitto, real bridge process)."""

import pytest

from devices.models import Device, DeviceEvent
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PUMP = "PUMP_RET"
LEGACY = f"device/{PUMP}/status"  # unkeyed (the original firmware): only the stored digest tells a replay
KEYED = f"devices/{PUMP}/status"


def statuses(**filters) -> list[tuple[str, int | None]]:
    return list(DeviceEvent.objects.filter(device__device_id=PUMP, kind="mqtt.status", **filters).order_by("id")
                .values_list("topic", "device_seq"))  # fmt: skip


def marker(pump: PumpClient, seq: int) -> None:
    """A new status after the replays (the broker sends retained messages first on subscribe): once it is
    applied, the replays before it were handled."""
    pump.publish("status", {"status": "testing", "seq": seq, "bootId": "b-ret"})
    wait_until(lambda: statuses(device_seq=seq), timeout=20, message=f"marker status {seq} not applied")


def test_retained_statuses_replayed_on_two_bridge_restarts_apply_once(broker, artifacts_dir):
    make_device(PUMP)
    bridge = BridgeProcess(broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           REPORT_BUDGET_PER_S="0").start()  # fmt: skip
    pump = PumpClient(broker.url, PUMP)
    try:
        pump.publish("", {"status": "online", "batteryLevel": 61}, topic=LEGACY, retain=True)
        pump.publish(
            "", {"status": "testing", "seq": 1, "bootId": "b-ret", "batteryLevel": 62}, topic=KEYED, retain=True
        )
        for _ in range(3):  # one burst: the copies of seq 2 (the same bytes, as a redelivery) likely share a batch
            pump.publish("status", {"status": "testing", "seq": 2, "bootId": "b-ret"})
        marker(pump, 10)
        for restart in range(2):
            bridge.stop()
            bridge.start()
            marker(pump, 11 + restart)
        applied = statuses()
    finally:
        pump.publish("", b"", topic=LEGACY, retain=True)  # clear the retained messages for later tests
        pump.publish("", b"", topic=KEYED, retain=True)
        pump.close()
        bridge.stop()
    assert applied == [(LEGACY, None), (KEYED, 1), (KEYED, 2), (KEYED, 10), (KEYED, 11), (KEYED, 12)], (
        f"each status applied once, in arrival order: {applied}"
    )
    assert Device.objects.get(device_id=PUMP).battery_level == 62, "a replay must not rewind the battery level"
