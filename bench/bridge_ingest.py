"""Bridge ingest benchmark: N pumps x M QoS 1 progress messages through a real Mosquitto into a real bridge.

Reports messages per second from the first publish to the last commit, the bridge's CPU seconds, and
(in-process, same code path) database queries per message. Run from the project root:

    .venv/bin/python bench/bridge_ingest.py --pumps 10 --messages 1000

It never runs in `make test`: the machine is shared, so repeat it and read the spread.
"""

import argparse
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def configure_django(database: Path) -> None:
    """Point Django at a fresh file SQLite database before anything imports the models."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "pumpstream.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("PROGRESS_FLOOD_PER_S", "0")  # measure ingest capacity, not the flood limit
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def pumps_create(count: int, *, running: bool) -> list[str]:
    """Register `count` pumps, heard just now, each with a running session when `running`.

    Bench fixture, written directly (not through the services: 4,000 orders and confirmations would take
    minutes and leave 4,000 START commands for the bridge to publish during the measurement).
    """
    from django.utils import timezone

    from devices.models import Device, InfusionSession, Ward
    from devices.states import PumpState, SessionStatus

    now = timezone.now()
    ward = Ward.objects.get_or_create(code="bench", defaults={"name": "Bench"})[0]
    devices = Device.objects.bulk_create(
        Device(device_id=f"BENCH_{index:04d}", ward=ward, last_seen_at=now, reported_status="running",
               pump_state=PumpState.RUNNING if running else PumpState.IDLE)
        for index in range(count)
    )  # fmt: skip
    if running:
        InfusionSession.objects.bulk_create(
            InfusionSession(device=device, status=SessionStatus.RUNNING, flow_rate_ml_min=2.0, planned_volume_ml=500.0,
                            planned_time_min=250.0, drug="Saline", confirmed_at=now, status_changed_at=now)
            for device in devices
        )  # fmt: skip
    return [device.device_id for device in devices]


def progress_payload(seq: int, boot_id: str) -> bytes:
    """One routine progress message as the current firmware sends it."""
    delivered = round(seq * 0.033, 3)
    return json.dumps({
        "timeRemainingMin": max(0.0, 250 - seq / 60), "volumeRemainingMl": max(0.0, 500 - delivered),
        "deliveredVolumeMl": delivered, "elapsedTimeMin": seq / 60, "progressPercent": min(100.0, delivered / 5),
        "flowRate": 2.0, "status": "running", "timestamp": seq * 1000, "seq": seq, "bootId": boot_id,
    }).encode()  # fmt: skip


def queries_per_message(device_ids: list[str], per_pump: int) -> dict:
    """Run the bridge's own batch commit in-process on synthetic messages and count the SQL it issues."""
    from django.db import connection

    from realtime.bridge.ingest import InboundMessage
    from realtime.bridge.worker import Bridge

    bridge = Bridge(name="bench-inprocess")
    boot_id = f"inproc-{uuid.uuid4().hex[:6]}"
    batch = [
        InboundMessage(topic=f"devices/{device_id}/progress", payload=progress_payload(seq, boot_id), mid=seq)
        for seq in range(per_pump) for device_id in device_ids
    ]  # fmt: skip
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    started = time.perf_counter()
    with connection.execute_wrapper(count):
        for start in range(0, len(batch), bridge.limits.max_messages):
            bridge.commit(batch[start : start + bridge.limits.max_messages])
    elapsed = time.perf_counter() - started
    return {"messages": len(batch), "queries": queries, "queries_per_message": queries / len(batch),
            "in_process_msgs_per_s": len(batch) / elapsed}  # fmt: skip


class Publisher:
    """A few paho clients sharing the pumps' topics, publishing QoS 1 round-robin across the pumps."""

    def __init__(self, broker, device_ids: list[str], per_pump: int, boot_id: str, *, clients: int, rate: float):
        import paho.mqtt.client as mqtt

        self.clients = []
        for index in range(min(clients, len(device_ids))):
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{index}", protocol=mqtt.MQTTv5)
            client.max_inflight_messages_set(1000)
            client.max_queued_messages_set(0)
            client.connect(broker.host, broker.port)
            client.loop_start()
            self.clients.append(client)
        self.device_ids = device_ids
        self.per_pump = per_pump
        self.boot_id = boot_id
        self.rate = rate
        self.unacked = 0
        self.last_publish_at = 0.0

    def run(self) -> None:
        """Publish (paced at `rate` msg/s in 10 ms ticks when given), then wait for every PUBACK."""
        infos = []
        started = time.monotonic()
        for seq in range(self.per_pump):
            for index, device_id in enumerate(self.device_ids):
                client = self.clients[index % len(self.clients)]
                payload = progress_payload(seq, self.boot_id)
                infos.append(client.publish(f"devices/{device_id}/progress", payload, qos=1))
                if self.rate and len(infos) % max(1, int(self.rate / 100)) == 0:
                    time.sleep(max(0.0, started + len(infos) / self.rate - time.monotonic()))
        self.last_publish_at = time.monotonic()
        for info in infos:
            info.wait_for_publish(timeout=120)
            self.unacked += not info.is_published()

    def close(self) -> None:
        for client in self.clients:
            client.loop_stop()
            client.disconnect()


def py_spy_start(pid: int, output: str) -> subprocess.Popen:
    """Sample the bridge with py-spy (collapsed stacks, all threads, GIL and idle excluded) until SIGINT."""
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", "200",
               "--format", "raw", "--output", output, "--nonblocking"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "BRIDGE_INTERNAL_SECRET": secrets.token_urlsafe(32),
    "LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
    "HEARTBEAT_TIMEOUT_S": "600",
}


def bridge_start(broker_url: str, database: Path, log_path: Path, realtime_url: str) -> subprocess.Popen:
    """The real `run_mqtt_bridge` process with production settings."""
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{database}", MQTT_URL=broker_url,
               REALTIME_INTERNAL_URL=realtime_url, MQTT_CLIENT_ID=f"bench-bridge-{uuid.uuid4().hex[:6]}",
               **PRODUCTION_ENV)  # fmt: skip
    return subprocess.Popen([sys.executable, "manage.py", "run_mqtt_bridge", "--name", "bench"], cwd=ROOT, env=env,
                            stdout=log_path.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip


def daphne_start(database: Path, log_dir: Path):
    """Daphne serving the real ASGI application, so forwarding includes the internal hop."""
    from tests.support.daphne import DaphneServer

    return DaphneServer(log_dir, DATABASE_URL=f"sqlite:///{database}", **PRODUCTION_ENV).start()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    from django.db import close_old_connections

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        close_old_connections()
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} within {timeout}s")


def run(args: argparse.Namespace) -> dict:
    """One measurement: set up, publish, wait for the last commit, collect the figures."""
    import psutil

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    configure_django(workdir / "bench.sqlite3")
    from devices.models import BridgeStatus, MessageReceipt
    from tests.support.broker import MosquittoBroker

    device_ids = pumps_create(args.pumps, running=not args.idle)
    inprocess = queries_per_message(device_ids[:500], per_pump=args.inprocess_per_pump)
    baseline = MessageReceipt.objects.count()
    broker = MosquittoBroker(workdir / "mosquitto", persistence=True).start()
    daphne = daphne_start(workdir / "bench.sqlite3", workdir) if args.daphne else None
    realtime_url = daphne.internal_url if daphne else "http://127.0.0.1:9"
    bridge = bridge_start(broker.url, workdir / "bench.sqlite3", workdir / "bridge.log", realtime_url)
    publisher = None
    try:
        wait_for(lambda: BridgeStatus.objects.filter(name="bench", broker_connected=True).exists(), 30,
                 "the bridge did not connect")  # fmt: skip
        profiler = py_spy_start(bridge.pid, args.py_spy) if args.py_spy else None
        cpu = psutil.Process(bridge.pid)
        cpu_before = sum(cpu.cpu_times()[:2])
        publisher = Publisher(broker, device_ids, args.messages, boot_id=f"bench-{uuid.uuid4().hex[:6]}",
                              clients=args.clients, rate=args.rate)  # fmt: skip
        total = args.pumps * args.messages
        started = time.monotonic()
        sender = threading.Thread(target=publisher.run)
        sender.start()
        wait_for(
            lambda: MessageReceipt.objects.count() - baseline >= total, args.timeout, "not every message was stored"
        )
        elapsed = time.monotonic() - started
        sender.join()
        lag = max(0.0, started + elapsed - publisher.last_publish_at)
        cpu_used = sum(cpu.cpu_times()[:2]) - cpu_before
        stored = MessageReceipt.objects.count() - baseline
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=30)
    finally:
        if publisher is not None:
            publisher.close()
        bridge.terminate()
        bridge.wait(timeout=20)
        broker.stop()
        if daphne is not None:
            daphne.stop()
    stats = BridgeStatus.objects.get(name="bench").stats
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": os.getloadavg()[0], "pumps": args.pumps, "messages_per_pump": args.messages, "total": total,
        "sessions_running": not args.idle, "stored": stored, "unacked_by_broker": publisher.unacked,
        "offered_rate": args.rate or "as fast as possible", "seconds": round(elapsed, 3),
        "msgs_per_s": round(total / elapsed), "lag_after_last_publish_s": round(lag, 3),
        "bridge_cpu_s": round(cpu_used, 2),
        "bridge_cpu_ms_per_msg": round(1000 * cpu_used / total, 3), "largest_batch": stats.get("largest_batch"),
        "batches": stats.get("batches"), **{key: round(value, 2) for key, value in inprocess.items()},
        "label": args.label, "daphne": args.daphne,
        "forwarded": stats.get("progress_forwarded"),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pumps", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000, help="QoS 1 progress messages per pump")
    parser.add_argument("--clients", type=int, default=10, help="publisher connections shared by the pumps")
    parser.add_argument("--rate", type=float, default=0, help="offered msg/s in all (0: as fast as possible)")
    parser.add_argument("--daphne", action="store_true", help="forward into a real Daphne (else: forward to nowhere)")
    parser.add_argument("--idle", action="store_true", help="pumps without a running session")
    parser.add_argument("--inprocess-per-pump", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--label", default="")
    parser.add_argument("--py-spy", default="", help="write py-spy's collapsed stacks of the bridge to this file")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    result = run(args)
    result["load_before"] = round(load, 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bridge_ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    sys.stdout.write(json.dumps(result, indent=2) + f"\nwritten to {out}\n")


if __name__ == "__main__":
    main()
