"""A flooding pump in a process of its own: `python tests/support/flooder.py HOST PORT DEVICE_ID COUNT`.

A real pump is a device of its own, so the flood's 3,000 publishes and their PUBACKs do not share the
interpreter of the test that times another pump's alarm. This process connects, says `ready`,
waits for a line on stdin, says `begun`, publishes COUNT QoS 1 `error` messages (each of a new type) as
fast as paho sends them, waits for every PUBACK, and prints `done <seconds to publish> <seconds to the
last PUBACK>`. `FLOODER_NICE=19` lowers its priority (a pump's CPU is not the server's: `bench/alarm_flood.py`).
"""

import os
import sys
import time

import paho.mqtt.client as mqtt


def main() -> None:
    host, port, device_id, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    os.nice(int(os.environ.get("FLOODER_NICE", "0")))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"flooding-{device_id}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(count)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    print("ready", flush=True)
    sys.stdin.readline()
    begun = time.monotonic()
    print("begun", flush=True)
    infos = [client.publish(f"devices/{device_id}/error", f'{{"type": "fault_{n}", "severity": "high"}}', qos=1)
             for n in range(count)]  # fmt: skip
    published = time.monotonic() - begun
    for info in infos:
        info.wait_for_publish(timeout=60)
    print(f"done {published:.3f} {time.monotonic() - begun:.3f}", flush=True)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
