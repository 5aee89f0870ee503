"""`pubacks_send`: a batch's PUBACKs in one write, the same bytes as paho's `ack`, acknowledged at the broker."""

import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.mqtt_client import make_client, pubacks_send

MESSAGES = 40


def queued_bytes(client: mqtt.Client) -> bytes:
    return b"".join(bytes(entry["packet"][entry["pos"] :]) for entry in client._out_packet)


def test_the_same_bytes_as_paho_ack_for_each_message() -> None:
    one_by_one = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    together = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    mids = [1, 255, 256, 65535]
    for mid in mids:
        one_by_one.ack(mid, 1)
    pubacks_send(together, mids)
    assert queued_bytes(together) == queued_bytes(one_by_one), "the PUBACKs differ from paho's own"
    assert set(together._out_packet[0]) == set(one_by_one._out_packet[0]), "paho's queue entries changed shape"
    assert len(together._out_packet) == 1, "the batch's PUBACKs should be one entry of paho's queue"


class Subscriber:
    """A manual-ack MQTT 5 subscriber with a persistent session, its loop driven by a thread (as the bridge's)."""

    def __init__(self, broker, client_id: str, topic: str) -> None:
        self.client = make_client(client_id, broker={})
        self.client.manual_ack_set(True)
        self.received: list[mqtt.MQTTMessage] = []
        self.client.on_message = lambda _c, _u, message: self.received.append(message)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 300
        self.client.connect(broker.host, broker.port, clean_start=False, properties=properties)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.client.loop(timeout=0.2) == mqtt.MQTT_ERR_SUCCESS:
            pass

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, f"{len(self.received)} of {count} messages arrived"

    def close(self) -> None:
        self.client.disconnect()
        self._stop.set()
        self.thread.join(timeout=5)


@pytest.mark.timeout(60)
def test_messages_acknowledged_together_are_not_redelivered_and_the_others_are(broker) -> None:
    client_id, topic = f"pubacks-{uuid.uuid4().hex[:8]}", f"pubacks/{uuid.uuid4().hex[:8]}"
    subscriber = Subscriber(broker, client_id, topic)
    publisher = make_client(f"{client_id}-pub", broker={})
    publisher.connect(broker.host, broker.port)
    publisher.loop_start()
    try:
        time.sleep(0.3)  # subscribed
        for seq in range(MESSAGES):
            publisher.publish(topic, str(seq), qos=1).wait_for_publish(timeout=5)
        subscriber.wait_for(MESSAGES)
        acknowledged = subscriber.received[: MESSAGES // 2]
        pubacks_send(subscriber.client, [message.mid for message in acknowledged])  # from this thread
        assert not subscriber.client.want_write(), "the PUBACKs should have been written by the calling thread"
        time.sleep(0.5)
        subscriber.close()
        again = Subscriber(broker, client_id, topic)
        try:
            again.wait_for(MESSAGES - MESSAGES // 2)
            time.sleep(0.5)
            redelivered = sorted(int(message.payload) for message in again.received)
            assert redelivered == list(range(MESSAGES // 2, MESSAGES)), (
                f"only the unacknowledged half should come again, got {redelivered}"
            )
            pubacks_send(again.client, [message.mid for message in again.received])
        finally:
            again.close()
    finally:
        publisher.disconnect()
        publisher.loop_stop()
