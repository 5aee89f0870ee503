"""What Mosquitto's store costs (review 34, finding 5): the broker's CPU, the bytes it writes and the pumps' PUBACK
times under the hospital load (400 pumps at 1 Hz, QoS 1), for `autosave_*` lines, with the bridge connected (a
subscriber acknowledging at once) or away (its session queuing). Runs alternate between the settings, so that the
machine's speed, which varies over minutes, falls on each alike; median and range of `--runs`.

    .venv/bin/python -m bench.broker_autosave --seconds 20 --runs 3
"""

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.broker import mosquitto_binary
from tests.support.processes import free_port, wait_for_port

SETTINGS = {
    "every 60 s": "autosave_interval 60",
    "every 1 s": "autosave_interval 1",
    "every change": "autosave_on_changes true\nautosave_interval 1",
}
PUMPS, RATE_HZ, PUBLISHERS = 400, 1.0, 20
CONFIG = """per_listener_settings false
listener {port} 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 100000
max_inflight_messages 1000
persistence true
persistence_location {data}/
{autosave}
user root
log_dest none
"""
PROGRESS = '{"seq":%d,"bootId":"b","infusionId":"inf-1","deliveredVolumeMl":12.5,"flowRate":1.0,"status":"running"}'


def client(port: int, client_id: str) -> mqtt.Client:
    """A started MQTT 5 client with a session that outlives it (as the bridge's and the pumps')."""
    link = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval, properties.ReceiveMaximum = 3600, 1000
    link.connect("127.0.0.1", port, clean_start=True, properties=properties)
    link.loop_start()
    return link


def broker_usage(pid: int) -> tuple[float, int]:
    """CPU seconds and bytes written (to storage) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(io["write_bytes"])


def puback_probe(port: int, times: list[float], stop: threading.Event) -> None:
    """One QoS 1 alarm every 100 ms, each timed from publish to PUBACK."""
    probe = client(port, "probe")
    while not stop.is_set():
        sent = time.monotonic()
        probe.publish("devices/PROBE/error", '{"type":"occlusion"}', qos=1).wait_for_publish(10)
        times.append(time.monotonic() - sent)
        time.sleep(0.1)
    probe.disconnect()


def run(autosave: str, *, bridge_away: bool, seconds: float) -> dict[str, float]:
    """One run: the broker's % of a core, MB written a second, PUBACK median and p99 (ms), its store at the end."""
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        Path(data, "mosquitto.conf").write_text(CONFIG.format(port=port, data=data, autosave=autosave))
        broker = subprocess.Popen([mosquitto_binary(), "-c", f"{data}/mosquitto.conf"], stdout=subprocess.DEVNULL)
        try:
            wait_for_port(port, process=broker)
            bridge = client(port, "bench-bridge")
            bridge.subscribe("devices/#", 1)
            publishers = [client(port, f"pumps-{index}") for index in range(PUBLISHERS)]
            for pump in range(PUMPS):  # every pump's retained presence, as in the store of a real fleet
                publishers[pump % PUBLISHERS].publish(f"devices/P{pump:04d}/status", '{"status":"online"}', 1, True)
            time.sleep(1)
            if bridge_away:
                bridge.disconnect()
            times, stop = [], threading.Event()
            threading.Thread(target=puback_probe, args=(port, times, stop), daemon=True).start()
            (cpu_before, written_before), began, seq = broker_usage(broker.pid), time.monotonic(), 0
            while time.monotonic() - began < seconds:
                second = time.monotonic()
                for pump in range(PUMPS):
                    publishers[pump % PUBLISHERS].publish(f"devices/P{pump:04d}/progress", PROGRESS % seq, qos=1)
                    seq += 1
                time.sleep(max(0.0, 1 / RATE_HZ - (time.monotonic() - second)))
            stop.set()
            cpu_after, written_after = broker_usage(broker.pid)
            elapsed = time.monotonic() - began
            store = Path(data, "mosquitto.db")
            times.sort()
            return {
                "cpu_percent": 100 * (cpu_after - cpu_before) / elapsed,
                "written_mb_s": (written_after - written_before) / 1e6 / elapsed,
                "puback_p50_ms": 1000 * times[len(times) // 2],
                "puback_p99_ms": 1000 * times[int(len(times) * 0.99)],
                "store_mb": store.stat().st_size / 1e6 if store.exists() else 0.0,
            }
        finally:
            broker.send_signal(signal.SIGTERM)
            broker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for bridge_away in (False, True):
        results: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
        for _ in range(args.runs):
            for name, autosave in SETTINGS.items():
                results[name].append(run(autosave, bridge_away=bridge_away, seconds=args.seconds))
        print(f"bridge {'away' if bridge_away else 'connected'}, {PUMPS} pumps at {RATE_HZ:g} Hz, {args.seconds:g} s")
        for name, runs in results.items():
            cells = []
            for key in runs[0]:
                values = sorted(run_[key] for run_ in runs)
                cells.append(f"{key} {statistics.median(values):.2f} ({values[0]:.2f}-{values[-1]:.2f})")
            print(f"  {name:13} " + ", ".join(cells))


if __name__ == "__main__":
    main()
