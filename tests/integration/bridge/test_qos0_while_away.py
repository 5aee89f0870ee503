"""The original firmware's alarms raised while the bridge is away are all raised, not only the last one per topic.

The original firmware publishes at QoS 0 (retained). With Mosquitto's default `queue_qos0_messages false` nothing
such a pump sends while the bridge is away (a restart, a deployment, a crash loop) is queued for the bridge's
persistent session: only each topic's last retained message came back, so of an occlusion and then a low battery
meanwhile the screen showed the low battery alone (review 19). Every config the project ships queues them now; the
retained copy that follows the queued ones is the payload last applied on its topic: a replay, applied once.
"""

import pytest

from devices.models import Alarm
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_two_alarms_of_the_original_firmware_while_the_bridge_is_away_are_both_raised(broker, artifacts_dir):
    make_device("LEGACY_AWAY")
    bridge = BridgeProcess(broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    bridge.stop()  # a restart (deployment): its persistent session stays at the broker
    pump = PumpClient(broker.url, "LEGACY_AWAY")
    try:
        pump.publish(
            "error",
            {
                "type": "occlusion",
                "severity": "high",
                "message": "Downstream occlusion",
                "deviceId": "LEGACY_AWAY",
                "timestamp": "0:10:01.200",
            },
            qos=0,
            retain=True,
        )
        pump.publish(
            "error",
            {
                "type": "low_battery",
                "severity": "medium",
                "message": "Battery low",
                "deviceId": "LEGACY_AWAY",
                "timestamp": "0:10:04.900",
            },
            qos=0,
            retain=True,
        )
        bridge.start()
        wait_until(lambda: Alarm.objects.filter(device__device_id="LEGACY_AWAY", type="low_battery").exists(),
                   timeout=20, message="the low_battery sent while the bridge was away never arrived")  # fmt: skip
        shown = sorted(Alarm.objects.filter(device__device_id="LEGACY_AWAY", state="active")
                       .values_list("type", "count"))  # fmt: skip
    finally:
        pump.close()
        bridge.stop()
    assert shown == [("low_battery", 1), ("occlusion", 1)], (
        f"the pump raised occlusion, then low_battery, at QoS 0 while the bridge was restarting (each once, queued "
        f"in that order, the low_battery's retained copy after them): the alarms are {shown}"
    )
