"""A pump without `seq` retains `online`, then reports `degraded` (not retained): the broker keeps that old `online`
and hands it back (retain 1) whenever the bridge re-subscribes. After a bridge restart and after a broker restart
the pump must still show degraded (real Mosquitto with persistence, real bridge process)."""

import pytest

from devices.models import Alarm, Device
from devices.states import AlarmState
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PUMP = "PUMP_RETP"
MARKER_PUMP = "PUMP_MARK"


@pytest.fixture
def own_broker(tmp_path):
    """Persistence on, so a broker restart keeps the retained `online` and the bridge's session."""
    server = MosquittoBroker(tmp_path / "mosquitto", persistence=True).start()
    yield server
    server.stop()


def degraded_shown() -> tuple[bool, str]:
    active = Alarm.objects.filter(device__device_id=PUMP, type="device_degraded", state=AlarmState.ACTIVE).exists()
    return active, Device.objects.get(device_id=PUMP).reported_status


def replays_handled(broker: MosquittoBroker, number: int) -> None:
    """Another pump's new status, published after the bridge re-subscribed: the broker sent its retained copies
    first, so once this is applied the replay before it was handled."""
    marker = PumpClient(broker.url, MARKER_PUMP)
    try:
        marker.publish("status", {"status": "testing", "batteryLevel": number})
    finally:
        marker.close()
    wait_until(lambda: Device.objects.filter(device_id=MARKER_PUMP, battery_level=number).exists(), timeout=30,
               message=f"marker {number} not applied after the bridge came back")  # fmt: skip


def test_a_retained_online_handed_back_on_reconnect_leaves_a_degraded_pump_degraded(own_broker, artifacts_dir):
    make_device(PUMP, has_presence=True)
    make_device(MARKER_PUMP)
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           REPORT_BUDGET_PER_S="0").start()  # fmt: skip
    pump = PumpClient(own_broker.url, PUMP)
    try:
        pump.publish("status", {"deviceId": PUMP, "status": "online", "firmwareVersion": "3.1"}, retain=True)
        pump.publish("status", {"deviceId": PUMP, "status": "degraded"})
        wait_until(lambda: degraded_shown() == (True, "degraded"), message="degraded was not applied")
        pump.close()
        bridge.stop()  # a bridge restart: its session is kept, the broker hands the retained `online` back
        bridge.start()
        replays_handled(own_broker, 1)
        after_bridge_restart = degraded_shown()
        own_broker.restart()  # SIGTERM: the retained `online` and the bridge's session are saved and restored
        bridge.wait_connected(timeout=40)
        replays_handled(own_broker, 2)
        after_broker_restart = degraded_shown()
    finally:
        bridge.stop()
    assert after_bridge_restart == (True, "degraded"), (
        f"after a bridge restart the broker's old retained `online` was applied as news: (degraded alarm active, "
        f"reported status) = {after_bridge_restart}"
    )
    assert after_broker_restart == (True, "degraded"), (
        f"after a broker restart the old retained `online` was applied as news: {after_broker_restart}"
    )
