"""The floor under issue 15's flood figure: how long a bare paho subscriber takes to see another pump's alarm.

    .venv/bin/python -m bench.flood_floor --rounds 10

`tests/integration/hostile/test_alarm_flood.py` measures, through the whole system, CALM's alarm published
while FLOOD publishes 3,000 QoS 1 errors (about 0.1 s): its worst of 10 during the flood against its worst
without. One MQTT session carries every pump's errors to the bridge, in the order the broker received them,
so CALM's alarm published just after the flood began cannot be read before the flood's messages ahead of
it. This measures that part alone: a real Mosquitto with the project's limits, and in place of the bridge a
bare paho client (MQTT 5, QoS 1, `devices/+/error`, the bridge's Receive Maximum of 1,000 and its manual
acknowledgements) that does nothing but note when CALM's alarm arrives. Each round: CALM's alarm alone,
then CALM's alarm published as soon as FLOOD's thread has begun publishing its 3,000 (as the test does).
The difference is what the broker and paho cost before any PumpStream code runs; PumpStream's own share
is the system figure minus it.
"""

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.broker import MosquittoBroker

FLOOD_MESSAGES = 3000


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
    client.max_inflight_messages_set(FLOOD_MESSAGES)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def flood_publish(flood: mqtt.Client, started: threading.Event) -> None:
    started.set()
    for m in range(FLOOD_MESSAGES):
        flood.publish("devices/FLOOD/error", f'{{"type": "fault_{m}", "severity": "high"}}', qos=1)


def calm_delay(subscriber: BareSubscriber, calm: mqtt.Client, tag: str) -> float:
    payload = f'{{"type": "{tag}", "severity": "high"}}'
    started = time.monotonic()
    calm.publish("devices/CALM/error", payload, qos=1)
    deadline = started + 30
    while payload not in subscriber.arrived:
        if time.monotonic() > deadline:
            raise RuntimeError(f"CALM's alarm {tag} never arrived")
        time.sleep(0.0005)
    return subscriber.arrived[payload] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flood-floor-") as workdir:
        broker = MosquittoBroker(Path(workdir) / "broker", persistence=False).start()
        subscriber = BareSubscriber(broker)
        flood, calm = publisher(broker, "flooding-pump"), publisher(broker, "calm-pump")
        quiet, during = [], []
        try:
            for n in range(args.rounds):
                quiet.append(calm_delay(subscriber, calm, f"quiet_{n}"))
                expected = subscriber.received + FLOOD_MESSAGES + 1
                started = threading.Event()
                flooder = threading.Thread(target=flood_publish, args=(flood, started))
                flooder.start()
                started.wait(10)  # as the system test: CALM publishes as soon as the flood has begun
                during.append(calm_delay(subscriber, calm, f"flood_{n}"))
                flooder.join()
                while subscriber.received < expected:  # the whole flood delivered before the next round
                    time.sleep(0.01)
                time.sleep(0.3)
        finally:
            for client in (flood, calm):
                client.loop_stop()
                client.disconnect()
            subscriber.close()
            broker.stop()
    for name, delays in (("without flood", quiet), ("during the flood", during)):
        ms = sorted(d * 1000 for d in delays)
        print(f"bare paho subscriber, CALM's alarm {name}: n={len(ms)} p50 {statistics.median(ms):.1f} ms, "
              f"worst {ms[-1]:.1f} ms, all {[round(x, 1) for x in ms]}")  # fmt: skip


if __name__ == "__main__":
    main()
