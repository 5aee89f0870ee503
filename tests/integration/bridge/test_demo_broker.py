"""The embedded demo broker (amqtt, MQTT 3.1.1 only): the bridge falls back to 3.1.1 and applies messages."""

import json
import subprocess

import paho.mqtt.client as mqtt
import pytest

from devices.models import BridgeStatus, Device
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, wait_until
from tests.support.processes import ROOT, VENV_BIN, free_port, stop, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_broker_url():
    port = free_port()
    process = subprocess.Popen([str(VENV_BIN / "python"), "-m", "realtime.demo_broker", "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for_port(port, process=process)
    yield f"mqtt://127.0.0.1:{port}"
    stop(process)


def test_bridge_falls_back_to_mqtt_311_on_the_demo_broker(demo_broker_url, artifacts_dir):
    make_device("PUMP_0002")
    bridge = BridgeProcess(demo_broker_url, f"http://127.0.0.1:{free_port()}", artifacts_dir)
    bridge.start(timeout=45)
    try:
        status = BridgeStatus.objects.get(name=bridge.name)
        assert status.stats.get("protocol") == "3.1.1", f"expected the 3.1.1 fallback, got {status.stats}"
        pump = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)  # what amqtt speaks
        pump.connect("127.0.0.1", int(demo_broker_url.rsplit(":", 1)[1]))
        pump.loop_start()
        try:
            pump.publish("devices/PUMP_0002/status", json.dumps({"status": "online", "batteryLevel": 55}), qos=1)
            wait_until(lambda: Device.objects.filter(device_id="PUMP_0002", battery_level=55).exists(),
                       message="the bridge on the demo broker never applied the status")  # fmt: skip
        finally:
            pump.disconnect()
            pump.loop_stop()
    finally:
        bridge.stop()
