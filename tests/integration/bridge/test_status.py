"""Each status value of the contract, sent through a real Mosquitto to a real bridge, ends right in the database."""

import pytest

from devices.models import Alarm, Device, DeviceEvent
from devices.states import AlarmState, Connectivity, Presence, PumpState
from tests.factories import make_device
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_online_then_offline_sets_presence_and_battery(shared_bridge, pump):
    make_device("PUMP_0001", has_presence=True)
    pump.publish("status", {"deviceId": "PUMP_0001", "status": "online", "batteryLevel": 87, "firmwareVersion": "2.1"})
    device = wait_until(lambda: Device.objects.filter(device_id="PUMP_0001", presence=Presence.ONLINE).first(),
                        message="online status not applied")  # fmt: skip
    assert device.battery_level == 87 and device.firmware_version == "2.1"
    assert device.connectivity() == Connectivity.ONLINE
    pump.publish("status", {"status": "offline"})
    device = wait_until(lambda: Device.objects.filter(device_id="PUMP_0001", presence=Presence.OFFLINE).first(),
                        message="offline (Last Will) not applied")  # fmt: skip
    assert device.connectivity() == Connectivity.OFFLINE


def test_legacy_status_topic_and_event_recorded(shared_bridge, pump):
    make_device("PUMP_0001")
    pump.publish("status", {"deviceId": "PUMP_0001", "status": "paused", "timestamp": 67201},
                 topic="device/PUMP_0001/status", qos=0)  # fmt: skip
    wait_until(lambda: Device.objects.filter(device_id="PUMP_0001", pump_state=PumpState.PAUSED).exists(),
               message="legacy status topic not applied")  # fmt: skip
    event = DeviceEvent.objects.get(kind="mqtt.status")
    assert event.topic == "device/PUMP_0001/status" and event.device_timestamp == 67201


def test_degraded_raises_medium_alarm_until_normal_status(shared_bridge, pump):
    make_device("PUMP_0001")
    pump.publish("status", {"status": "degraded"})
    alarm = wait_until(lambda: Alarm.objects.filter(type="device_degraded", state=AlarmState.ACTIVE).first(),
                       message="degraded did not raise device_degraded")  # fmt: skip
    assert alarm.priority == "medium"
    pump.publish("status", {"status": "issue"})
    pump.publish("status", {"status": "idle"})
    wait_until(lambda: Alarm.objects.filter(type="device_degraded", state=AlarmState.CLEARED).exists(),
               message="a normal status did not clear device_degraded")  # fmt: skip
    assert Alarm.objects.filter(type="device_degraded").count() == 1, "a repeat must not raise a second alarm"
