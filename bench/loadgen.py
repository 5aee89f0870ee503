"""The load generator: D pumps publishing QoS 1 progress at R Hz each, each on its own phase, on one asyncio loop.

Every payload carries `intendedAt`, the time the message was due (epoch seconds), so latency is measured
from the schedule and a lagging generator cannot hide delay (no coordinated omission). It writes JSON:
how many messages of each pump were due in the measured window, its own send lag and CPU seconds.

    python -m bench.loadgen --broker 127.0.0.1:1883 --pumps pumps.json --rate 1 --start-at T --duration 30 --out g.json
"""

import argparse
import asyncio
import json
import os
import resource
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.mqtt_async import AsyncMqtt
from bench.stats import latency_summary

MAX_SLEEP_S = 0.05


def progress_payload(seq: int, boot_id: str, intended_at: float) -> bytes:
    """A routine progress report as the current firmware sends it, plus the bench's `intendedAt`: 2 mL/min (the
    sessions' order) since `BENCH_COUNT_ORIGIN`, on the real clock, never past 499 of the 500 mL."""
    minutes = max(0.0, intended_at - float(os.environ["BENCH_COUNT_ORIGIN"])) / 60
    delivered = round(min(minutes * 2.0, 499.0), 3)
    return json.dumps({
        "timeRemainingMin": max(0.0, 250 - minutes), "volumeRemainingMl": max(0.0, 500 - delivered),
        "deliveredVolumeMl": delivered, "elapsedTimeMin": round(minutes, 4), "progressPercent": delivered / 5,
        "flowRate": 2.0, "status": "running", "timestamp": seq * 1000, "seq": seq, "bootId": boot_id,
        "intendedAt": intended_at,
    }).encode()  # fmt: skip


def schedule(pump_count: int, rate_hz: float, start_at: float, end_at: float):
    """(intended time, pump index, seq) in time order: pump i is due at start + (i / D + k) / R (its own phase)."""
    interval = 1.0 / rate_hz
    seq = 0
    while True:
        for index in range(pump_count):
            due = start_at + interval * (seq + index / pump_count)
            if due >= end_at:
                return
            yield due, index, seq
        seq += 1


async def generate(args: argparse.Namespace, device_ids: list[str]) -> dict:
    """Connect, publish on schedule until the end of the window, wait for every PUBACK, report."""
    host, port = args.broker.split(":")
    tag = uuid.uuid4().hex[:6]
    links = [await AsyncMqtt(host, int(port), f"bench-gen-{tag}-{n}").connect() for n in range(args.connections)]
    boot_id = "bench-boot"  # one boot for every run: a new bootId is a pump restart (it would end the sessions)
    seq_base = int(args.start_at * 10)  # `seq` goes on from the last run's (tenths of a second: pumps <= 10 Hz)
    end_at = args.start_at + args.warmup + args.duration
    measured_from = args.start_at + args.warmup
    due_per_pump: Counter[str] = Counter()
    lags: list[float] = []
    infos = []
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    for due, index, seq in schedule(len(device_ids), args.rate, args.start_at, end_at):
        wait = due - time.time()
        while wait > 0:  # sleep in short steps so the loop keeps reading PUBACKs
            await asyncio.sleep(min(wait, MAX_SLEEP_S))
            wait = due - time.time()
        device_id = device_ids[index]
        infos.append(links[index % len(links)].publish(f"devices/{device_id}/progress",
                                                       progress_payload(seq_base + seq, boot_id, due)))  # fmt: skip
        lags.append((time.time() - due) * 1000)
        if due >= measured_from:
            due_per_pump[device_id] += 1
        if len(infos) % 200 == 0:
            await asyncio.sleep(0)  # let PUBACKs in during a backlog
    unacked = await _wait_acked(infos, timeout=args.ack_timeout)
    cpu = _cpu_seconds(cpu_before, resource.getrusage(resource.RUSAGE_SELF))
    for link in links:
        await link.close()
    return {"published": len(infos), "unacked": unacked, "due_per_pump": dict(due_per_pump),
            "send_lag": latency_summary(lags), "cpu_s": round(cpu, 2),
            "cpu_share": round(cpu / max(end_at - args.start_at, 1e-9), 3)}  # fmt: skip


async def _wait_acked(infos: list, *, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(info.is_published() for info in infos[-100:]):
        await asyncio.sleep(0.05)
    return sum(not info.is_published() for info in infos)


def _cpu_seconds(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True, help="host:port")
    parser.add_argument("--pumps", required=True, type=Path, help="JSON list of device ids")
    parser.add_argument("--rate", type=float, required=True, help="progress reports per second per pump")
    parser.add_argument("--start-at", type=float, required=True, help="epoch seconds of the first due message")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, required=True, help="measured seconds after the warm-up")
    parser.add_argument("--connections", type=int, default=20, help="MQTT connections shared by the pumps")
    parser.add_argument("--ack-timeout", type=float, default=60.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device_ids = json.loads(args.pumps.read_text())
    args.out.write_text(json.dumps(asyncio.run(generate(args, device_ids))))


if __name__ == "__main__":
    main()
