"""The interactive prompt driven through standard input, and a fleet in one process, against real parts."""

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from devices.models import Alarm, DeadLetter, Device
from devices.states import AlarmState, Presence, PumpState
from tests.factories import make_device
from tests.support.bridge import wait_until
from tests.support.simulator import SimulatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_prompt_offline_sends_the_last_will_and_online_comes_back(sim_bridge, sim_broker, artifacts_dir):
    make_device("SIMT_PROMPT", has_presence=True)
    sim = SimulatorProcess(sim_broker.url, "SIMT_PROMPT", log_dir=artifacts_dir).start(interactive=True)
    try:
        presence = lambda: Device.objects.get(device_id="SIMT_PROMPT").presence  # noqa: E731
        wait_until(lambda: presence() == Presence.ONLINE, message=f"never online:\n{sim.log_tail()}")
        sim.type("offline")
        wait_until(lambda: presence() == Presence.OFFLINE, message="dropping the line must fire the Last Will")
        sim.type("online")
        wait_until(lambda: presence() == Presence.ONLINE, message=f"online did not reconnect:\n{sim.log_tail()}")
        sim.type("error battery_low")
        wait_until(lambda: Alarm.objects.filter(device__device_id="SIMT_PROMPT", type="battery_low").exists(),
                   message="error battery_low raised no alarm")  # fmt: skip
        sim.type("clear battery_low")
        wait_until(lambda: Alarm.objects.filter(type="battery_low", state=AlarmState.CLEARED).exists(),
                   message="clear battery_low did not clear it")  # fmt: skip
        sim.type("help")
        sim.type("quit")
        assert sim.wait(timeout=15) == 0
    finally:
        sim.stop()
    output = sim.output()
    assert "-> devices/SIMT_PROMPT/error [qos1]" in output and '"type": "battery_low_cleared"' in output
    assert "offline" in output and "clear TYPE" in output, "help lists the commands"


def test_a_fleet_runs_in_one_process_and_every_pump_reports_progress(sim_broker, artifacts_dir):
    host, port = sim_broker.url.removeprefix("mqtt://").split(":")
    seen: dict[str, int] = {}
    without_seq: list[str] = []
    lock = threading.Lock()

    def on_message(_client, _userdata, message):
        with lock:
            device_id = message.topic.split("/")[1]
            seen[device_id] = seen.get(device_id, 0) + 1
            if "seq" not in json.loads(message.payload):
                without_seq.append(device_id)

    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    listener.on_message = on_message
    listener.connect(host, int(port))
    listener.subscribe("devices/+/progress", qos=0)
    listener.loop_start()
    sim = SimulatorProcess(sim_broker.url, "--fleet", "50", "--prefix", "FLEET_", "--free-run", "--rate", "4",
                           "--duration", "4", log_dir=artifacts_dir).start()  # fmt: skip
    try:
        assert sim.wait(timeout=30) == 0, sim.log_tail()
        time.sleep(0.2)
    finally:
        listener.disconnect()
        listener.loop_stop()
    assert not without_seq, f"progress without seq from {without_seq[:3]}"
    assert len(seen) == 50, f"only {len(seen)} of 50 pumps reported progress"
    assert min(seen.values()) >= 5, f"some pumps reported rarely at 4 Hz: {sorted(seen.values())[:5]}"


def test_a_free_running_pump_is_shown_infusing_without_an_order(sim_bridge, sim_broker, artifacts_dir):
    """`--free-run` through Mosquitto and the bridge: the pump's own infusion is shown as such (review 33: its empty
    `infusionId` was refused and raised a high `unreadable_report`, and the pump was never shown infusing)."""
    make_device("SIMT_FREE", has_presence=True)
    sim = SimulatorProcess(sim_broker.url, "SIMT_FREE", "--free-run", "--confirm-delay", "0.2", "--duration", "30",
                           log_dir=artifacts_dir).start()  # fmt: skip
    try:
        alarms = Alarm.objects.filter(device__device_id="SIMT_FREE")
        wait_until(lambda: alarms.filter(type="infusing_without_order", state=AlarmState.ACTIVE).exists(),
                   message="the free-running pump was never shown infusing without an order")  # fmt: skip
        device = Device.objects.get(device_id="SIMT_FREE")
        unreadable = list(alarms.filter(type="unreadable_report").values_list("message", flat=True))
        refused = list(DeadLetter.objects.filter(source="SIMT_FREE").values_list("reason", "detail"))
    finally:
        sim.stop()
    assert device.pump_state == PumpState.RUNNING, f"the free-running pump is shown {device.pump_state}"
    assert not unreadable and not refused, f"its reports were refused: {unreadable} {refused}"
