"""The floor under issue 15's flood figure: how long a bare paho subscriber takes to see another pump's alarm.

    .venv/bin/python -m bench.flood_floor --rounds 10 [--mid-s 0.6]

`tests/integration/hostile/test_alarm_flood.py` measures, through the whole system, CALM's alarm published
while FLOOD publishes 3,000 QoS 1 errors (about 0.1 s): its worst of 10 during the flood against its worst
without. One MQTT session carries every pump's errors to the bridge, in the order the broker received them,
so CALM's alarm published after the flood's messages reached the broker cannot be read before them. This
measures that part alone: a real Mosquitto with the project's limits, and in place of the bridge a bare paho
client (MQTT 5, QoS 1, `devices/+/error`, the bridge's Receive Maximum of 1,000 and its manual
acknowledgements, each given at once) that does nothing but note when CALM's alarms arrive. FLOOD publishes
from a process of its own (`tests/support/flooder.py`, as in the test). Each round: CALM's alarm alone; then
one published as soon as FLOOD has begun (*at the start*) and one `--mid-s` later (*mid-flood*, as the test's
second sample: by then the broker holds the flood, and CALM's alarm is behind it in the session). The
difference is what the broker and paho cost before any PumpStream code runs; PumpStream's own share is the
system figure minus it.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.broker import MosquittoBroker
from tests.support.processes import ROOT

FLOOD_MESSAGES = 3000
FLOODER = ROOT / "tests" / "support" / "flooder.py"


class BareSubscriber:
    """The bridge's MQTT side without the bridge: QoS 1, manual acks, notes CALM's alarms as they arrive."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.arrived: dict[str, float] = {}
        self.received = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bare-bridge", protocol=mqtt.MQTTv5,
                                  manual_ack=True)  # fmt: skip
        self.client.on_message = self._message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe("devices/+/error", qos=1)
        properties = Properties(PacketTypes.CONNECT)
        properties.ReceiveMaximum = 1000
        self.client.connect(broker.host, broker.port, properties=properties)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("the bare subscriber never subscribed")

    def _message(self, client, userdata, message) -> None:
        self.received += 1
        if message.topic == "devices/CALM/error":
            self.arrived[message.payload.decode()] = time.monotonic()
        client.ack(message.mid, message.qos)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publisher(broker: MosquittoBroker, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def flooder(broker: MosquittoBroker) -> subprocess.Popen:
    """FLOOD's process, connected and waiting for a line on stdin (`tests/support/flooder.py`)."""
    command = [sys.executable, str(FLOODER), broker.host, str(broker.port), "FLOOD", str(FLOOD_MESSAGES)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the flooding pump could not connect")
    return process


def calm_publish(calm: mqtt.Client, tag: str) -> tuple[str, float]:
    payload = f'{{"type": "{tag}", "severity": "high"}}'
    started = time.monotonic()
    calm.publish("devices/CALM/error", payload, qos=1)
    return payload, started


def calm_delay(subscriber: BareSubscriber, published: tuple[str, float]) -> float:
    payload, started = published
    deadline = started + 30
    while payload not in subscriber.arrived:
        if time.monotonic() > deadline:
            raise RuntimeError(f"CALM's alarm {payload} never arrived")
        time.sleep(0.0005)
    return subscriber.arrived[payload] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--mid-s", type=float, default=0.6, help="when the mid-flood alarm is published")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flood-floor-") as workdir:
        broker = MosquittoBroker(Path(workdir) / "broker", persistence=False).start()
        subscriber = BareSubscriber(broker)
        calm = publisher(broker, "calm-pump")
        delays: dict[str, list[float]] = {"without flood": [], "at the start": [], "mid-flood": []}
        try:
            for n in range(args.rounds):
                delays["without flood"].append(calm_delay(subscriber, calm_publish(calm, f"quiet_{n}")))
                expected = subscriber.received + FLOOD_MESSAGES + 2
                flood = flooder(broker)
                flood.stdin.write("go\n")
                flood.stdin.flush()
                flood.stdout.readline()  # "begun": CALM publishes as soon as the flood has begun, as the test
                at_start = calm_publish(calm, f"start_{n}")
                time.sleep(max(0.0, at_start[1] + args.mid_s - time.monotonic()))
                mid = calm_publish(calm, f"mid_{n}")
                delays["at the start"].append(calm_delay(subscriber, at_start))
                delays["mid-flood"].append(calm_delay(subscriber, mid))
                flood.communicate(timeout=60)
                while subscriber.received < expected:  # the whole flood delivered before the next round
                    time.sleep(0.01)
                time.sleep(0.3)
        finally:
            calm.loop_stop()
            calm.disconnect()
            subscriber.close()
            broker.stop()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    for name, values in delays.items():
        ms = sorted(d * 1000 for d in values)
        print(f"bare paho subscriber, CALM's alarm {name}: n={len(ms)} p50 {statistics.median(ms):.1f} ms, "
              f"worst {ms[-1]:.1f} ms, all {[round(x, 1) for x in ms]} (load {load})")  # fmt: skip


if __name__ == "__main__":
    main()
