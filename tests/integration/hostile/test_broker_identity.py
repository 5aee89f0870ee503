"""Item 2 of issue 15: with the shipped production broker config, a pump cannot be the bridge.

Mosquitto runs `deploy/mosquitto/production.conf` as shipped, except for what a test must change: the
TLS listener becomes a loopback one without TLS, and the file paths point into the test's directory.
On the old main, pump A (its own password, client id `pumpstream-bridge`, clean start) took the bridge's
session: the bridge was dropped and pump B's alarm queued for it was wiped, never reaching it.
"""

import re
import subprocess
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from devices.models import Alarm, BridgeStatus
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, wait_until
from tests.support.broker import mosquitto_binary
from tests.support.processes import ROOT, free_port, stop, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
DEPLOY = ROOT / "deploy" / "mosquitto"
BRIDGE_USER = "pumpstream-bridge"
USERS = {BRIDGE_USER: "bridge-pass", "PUMP_A": "pump-a-pass", "PUMP_B": "pump-b-pass"}
TLS_LINES = re.compile(r"^(certfile|keyfile|cafile|tls_version)\b.*$", re.MULTILINE)


def production_config(data, port: int) -> str:
    """The shipped production config; its listener on loopback without TLS (its options kept), paths into `data`."""
    config = (DEPLOY / "production.conf").read_text()
    config = TLS_LINES.sub("", config).replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    config = re.sub(r"^password_file .*$", f"password_file {data}/passwd", config, flags=re.MULTILINE)
    config = re.sub(r"^acl_file .*$", f"acl_file {DEPLOY}/pumpstream.acl", config, flags=re.MULTILINE)
    config = re.sub(r"^persistence_location .*$", f"persistence_location {data}/", config, flags=re.MULTILINE)
    config = re.sub(r"^log_dest .*$", f"log_dest file {data}/mosquitto.log", config, flags=re.MULTILINE)
    assert f"listener {port} 127.0.0.1" in config, "the production listener was not found"
    return f"{config}\nuser root\n"


@pytest.fixture
def production_broker(tmp_path):
    """Mosquitto with the production config; yields its port."""
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(production_config(tmp_path, port))
    process = subprocess.Popen([mosquitto_binary(), "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.DEVNULL)
    wait_for_port(port, process=process)
    yield port
    stop(process)


def pump(port: int, user: str, *, client_id: str | None = None, subscribe: str | None = None):
    """A pump connected with its own password (clean start), optionally asking for another client id."""
    received: list = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"{user}-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.username_pw_set(user, USERS[user])
    client.on_message = lambda _c, _u, message: received.append((message.topic, message.payload))
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    if subscribe:
        client.subscribe(subscribe, qos=1)
    time.sleep(0.3)
    return client, received


def close(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()


def connected_since(bridge: BridgeProcess):
    status = BridgeStatus.objects.get(name=bridge.name)
    return status.broker_connected, status.broker_connected_since


def test_a_pump_cannot_take_the_bridges_client_id_or_session(production_broker, artifacts_dir):
    make_device("PUMP_B")
    broker_url = f"mqtt://{BRIDGE_USER}:{USERS[BRIDGE_USER]}@127.0.0.1:{production_broker}"
    bridge = BridgeProcess(broker_url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           MQTT_CLIENT_ID=BRIDGE_USER).start()  # fmt: skip
    try:
        # While the bridge is connected: pump A asks for its client id; the bridge must keep its connection.
        before = connected_since(bridge)
        impostor, _ = pump(production_broker, "PUMP_A", client_id=BRIDGE_USER)
        pump_b, _ = pump(production_broker, "PUMP_B")
        pump_b.publish("devices/PUMP_B/error", '{"type": "occlusion", "severity": "high"}', qos=1).wait_for_publish(5)
        wait_until(lambda: Alarm.objects.filter(device__device_id="PUMP_B", type="occlusion").exists(),
                   message=f"pump B's alarm never reached the bridge:\n{bridge.log_tail()}")  # fmt: skip
        time.sleep(1.5)  # three heartbeats: a dropped and reconnected bridge would show a new connection time
        assert connected_since(bridge) == before, "pump A's connection dropped the bridge"
        close(impostor)

        # While the bridge is down: pump B's alarm is queued in its session; A asks for that session, clean.
        bridge.stop()
        pump_b.publish("devices/PUMP_B/error", '{"type": "air_in_line", "severity": "high"}', qos=1).wait_for_publish(5)
        impostor, stolen = pump(production_broker, "PUMP_A", client_id=BRIDGE_USER, subscribe="devices/#")
        time.sleep(0.5)
        close(impostor, pump_b)
        assert not any(topic.startswith("devices/PUMP_B") for topic, _ in stolen), "pump A read the bridge's queue"
        bridge.start()
        wait_until(lambda: Alarm.objects.filter(device__device_id="PUMP_B", type="air_in_line").exists(), timeout=15,
                   message=f"the alarm queued for the bridge was lost:\n{bridge.log_tail()}")  # fmt: skip
    finally:
        bridge.stop()


def test_a_pump_cannot_publish_on_any_commands_topic(production_broker):
    pump_b, commands_of_b = pump(production_broker, "PUMP_B", subscribe="devices/PUMP_B/commands")
    pump_a, commands_of_a = pump(production_broker, "PUMP_A", subscribe="devices/PUMP_A/commands")
    try:
        for topic in ("devices/PUMP_B/commands", "devices/PUMP_A/commands", "devices/+/commands"):
            pump_a.publish(topic.replace("+", "PUMP_B"), b'{"command": "STOP_INFUSION"}', qos=1).wait_for_publish(5)
        time.sleep(0.5)
    finally:
        close(pump_a, pump_b)
    assert commands_of_b == [], f"pump A commanded pump B: {commands_of_b}"
    assert commands_of_a == [], f"pump A wrote its own commands topic: {commands_of_a}"
