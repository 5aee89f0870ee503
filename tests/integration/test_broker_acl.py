"""The shipped broker ACL: a pump cannot publish as another pump or read another pump's commands."""

import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tests.support.bridge import wait_until
from tests.support.broker import mosquitto_binary
from tests.support.processes import ROOT, free_port, stop, wait_for_port

pytestmark = pytest.mark.integration
ACL = ROOT / "deploy" / "mosquitto" / "pumpstream.acl"
USERS = {"pumpstream-bridge": "bridge-pass", "pumpstream-bridge-1": "bridge-pass", "PUMP_A": "pump-a-pass",
         "PUMP_B": "pump-b-pass"}  # fmt: skip


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory):
    data = tmp_path_factory.mktemp("acl-broker")
    passwd = data / "passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    port = free_port()
    config = data / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\nacl_file {ACL}\n"
        f"user root\nset_tcp_nodelay true\nmax_queued_messages 100000\n"
    )
    process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=subprocess.DEVNULL)
    wait_for_port(port, process=process)
    yield port
    stop(process)


def connect(port: int, user: str, password: str, subscribe: str | None = None) -> tuple[mqtt.Client, list]:
    received: list = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"acl-test-{user}", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.on_message = lambda c, u, msg: received.append((msg.topic, msg.payload))
    connected, subscribed = threading.Event(), threading.Event()
    client.on_connect = lambda c, u, flags, reason, props: connected.set()
    client.on_subscribe = lambda c, u, mid, reasons, props: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10), f"{user} never connected"
    if subscribe:
        client.subscribe(subscribe, qos=1)
        assert subscribed.wait(10), f"{user}'s subscription to {subscribe} was never answered"
    return client, received


def disconnect(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def test_pump_can_publish_only_as_itself(secured_broker: int):
    bridge, seen = connect(secured_broker, "pumpstream-bridge", USERS["pumpstream-bridge"], "devices/#")
    pump_a, _ = connect(secured_broker, "PUMP_A", USERS["PUMP_A"])
    try:
        publish(pump_a, "devices/PUMP_B/status", b"forged")
        publish(pump_a, "devices/PUMP_A/status", b"genuine")
        wait_until(lambda: ("devices/PUMP_A/status", b"genuine") in seen, timeout=10, database=False,
                   message="the bridge must hear a pump on its own topic")  # fmt: skip
        time.sleep(0.5)  # the forged one, published first, would have come by now
    finally:
        disconnect(bridge, pump_a)
    assert ("devices/PUMP_A/status", b"genuine") in seen, "the bridge must hear a pump on its own topic"
    assert ("devices/PUMP_B/status", b"forged") not in seen, "a pump must not publish as another pump"


def test_pump_cannot_read_another_pumps_commands(secured_broker: int):
    spy, spied = connect(secured_broker, "PUMP_A", USERS["PUMP_A"], "devices/PUMP_B/commands")
    pump_b, own = connect(secured_broker, "PUMP_B", USERS["PUMP_B"], "devices/PUMP_B/commands")
    bridge, _ = connect(secured_broker, "pumpstream-bridge", USERS["pumpstream-bridge"])
    try:
        publish(bridge, "devices/PUMP_B/commands", b'{"command":"STOP_INFUSION"}')
        wait_until(lambda: own, timeout=10, database=False, message="the pump never received its own command")
        time.sleep(0.5)  # the spy's copy, if the broker sent one, would have come by now
    finally:
        disconnect(spy, pump_b, bridge)
    assert own == [("devices/PUMP_B/commands", b'{"command":"STOP_INFUSION"}')]
    assert spied == [], "a pump must not read another pump's commands"


def test_wrong_password_is_refused(secured_broker: int):
    outcomes: list = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("PUMP_A", "wrong")
    client.on_connect = lambda c, u, flags, reason, props: outcomes.append(reason)
    client.connect("127.0.0.1", secured_broker)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    assert outcomes and outcomes[0].is_failure, f"a wrong password must be refused, got {outcomes}"


def test_a_shared_bridges_slot_user_reads_every_pump_and_writes_commands(secured_broker: int):
    """Slot 1 of shared bridges (BRIDGE_SLOTS, docs/deploy.md) connects as `pumpstream-bridge-1`."""
    slot, seen = connect(secured_broker, "pumpstream-bridge-1", USERS["pumpstream-bridge-1"], "devices/#")
    pump_a, commands = connect(secured_broker, "PUMP_A", USERS["PUMP_A"], "devices/PUMP_A/commands")
    try:
        publish(pump_a, "devices/PUMP_A/progress", b"genuine")
        publish(slot, "devices/PUMP_A/commands", b'{"command":"PAUSE_INFUSION"}')
        wait_until(lambda: ("devices/PUMP_A/progress", b"genuine") in seen and commands, timeout=10, database=False,
                   message="the slot's session or the pump heard nothing")  # fmt: skip
    finally:
        disconnect(slot, pump_a)
    assert ("devices/PUMP_A/progress", b"genuine") in seen, "a slot's session hears every pump"
    assert commands == [("devices/PUMP_A/commands", b'{"command":"PAUSE_INFUSION"}')], "it may send commands"
