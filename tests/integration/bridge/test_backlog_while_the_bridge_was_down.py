"""What a pump said while the bridge was dead waits at the broker and is applied as itself when the bridge is back,
not shed as a flood (split from test_crash_recovery.py: it loads nothing, mostly waits, and need not run alone)."""

import time

import pytest

from devices.models import Alarm, Device
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_what_a_pump_said_while_the_bridge_was_down_is_applied_as_itself_not_shed_as_a_flood(broker, artifacts_dir):
    """Default budgets (1 alarm a second, burst 5). While the bridge is dead, a pump raises and clears 6 alarms at
    its budget's pace (one message a second); they wait at the broker and arrive at once when the bridge is back.
    Credited for its time away, the bridge applies each as itself: before, 7 of the 12 were shed, a false high
    `alarm_flood` was raised and a shed clearing left its alarm standing on the screen."""
    make_device("PUMP_AWAY")
    bridge = BridgeProcess(broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    pump = PumpClient(broker.url, "PUMP_AWAY")
    try:
        pump.publish("status", {"status": "online", "batteryLevel": 80})
        wait_until(lambda: Device.objects.filter(device_id="PUMP_AWAY", presence="online").exists(),
                   message="the pump's status was not applied")  # fmt: skip
        bridge.kill()  # dies holding the broker: away since its last heartbeat
        for n in range(6):
            pump.publish("error", {"type": f"air_in_line_{n}", "severity": "high"})
            time.sleep(1.0)
            pump.publish("error", {"type": f"air_in_line_{n}_cleared"})
            time.sleep(1.0)
        bridge.start()
        alarms = Alarm.objects.filter(device__device_id="PUMP_AWAY")
        wait_until(lambda: alarms.filter(type="air_in_line_5", state="cleared").exists() or
                   alarms.filter(type="alarm_flood").exists(), message="the backlog was not applied")  # fmt: skip
    finally:
        pump.close()
        bridge.stop()
    assert not alarms.filter(type="alarm_flood").exists(), "a backlog was taken for a flood"
    assert sorted(alarms.values_list("type", "state")) == [(f"air_in_line_{n}", "cleared") for n in range(6)]
