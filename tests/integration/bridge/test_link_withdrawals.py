"""Commands withdrawn unacknowledged (`CommandOutbox._fail_overdue` at the PUBACK deadline, `_forget_ended` for a
START whose order ended) give paho's in-flight slot back: found by review 6, every withdrawal kept one of the link's
100 slots until the next reconnection, and after 100 (PUBACKs later than COMMAND_ACK_TIMEOUT_S on a connection that
stayed up: a broker stalled shorter than the keepalive) paho queued every further command unsent, each STOP then
failing at its deadline for every pump while the bridge looked connected.

A real Mosquitto stalled with SIGSTOP (its socket stays open, no PUBACK comes) while 100 commands are published and
withdrawn, then resumed."""

import json
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from realtime.bridge.link import BrokerLink
from tests.support.broker import MosquittoBroker

pytestmark = [pytest.mark.integration]
SLOTS = 100  # the link's max_inflight_messages


@pytest.fixture
def stallable_broker(tmp_path):
    server = MosquittoBroker(tmp_path / "mosquitto", persistence=False).start()
    yield server
    server.process.send_signal(signal.SIGCONT)
    server.stop()


def test_commands_still_go_out_after_withdrawing_a_window_of_unacknowledged_ones(stallable_broker):
    config = {"HOST": stallable_broker.host, "PORT": stallable_broker.port, "KEEPALIVE_S": 60,
              "SESSION_EXPIRY_S": 60, "CLIENT_ID": "withdrawals-bridge"}  # fmt: skip
    link = BrokerLink(on_inbound=lambda message: None, on_puback=lambda mid: None, broker=config)
    runner = threading.Thread(target=link.run, daemon=True)
    runner.start()
    pump = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="withdrawals-pump", protocol=mqtt.MQTTv5)
    received: list[dict] = []
    pump.on_message = lambda _client, _userdata, message: received.append(json.loads(message.payload))
    pump.connect(stallable_broker.host, stallable_broker.port)
    pump.loop_start()
    try:
        assert link.connected.wait(10), "the link never connected"
        subscribed = threading.Event()
        pump.on_subscribe = lambda *_args: subscribed.set()
        pump.subscribe("devices/P1/commands", qos=1)
        assert subscribed.wait(10)
        stallable_broker.process.send_signal(signal.SIGSTOP)  # stalled: no PUBACK, the connection stays up
        for n in range(SLOTS):
            mid = link.publish("devices/P1/commands", json.dumps({"n": n}), expiry_s=1)
            assert mid is not None
            link.forget(mid)  # what the outbox does at the PUBACK deadline
        stallable_broker.process.send_signal(signal.SIGCONT)
        assert link.connected.is_set(), "precondition: the link stayed connected"
        mid = link.publish("devices/P1/commands", json.dumps({"command": "STOP_INFUSION"}), expiry_s=30)
        assert mid is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(m.get("command") == "STOP_INFUSION" for m in received):
            time.sleep(0.05)
        assert any(m.get("command") == "STOP_INFUSION" for m in received), (
            f"a STOP published on a connected link never reached the pump: paho counts "
            f"{link.client._inflight_messages} in flight (the withdrawn ones kept their slots)"
        )
        assert link.client._inflight_messages <= 1
    finally:
        link.stop()
        pump.disconnect()
        pump.loop_stop()
        runner.join(5)
