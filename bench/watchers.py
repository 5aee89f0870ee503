"""Watchers on one asyncio loop: C Socket.IO clients (or, for the floor, C MQTT clients) each watching K pumps.

Each records the latency of every progress report from its intended send time (`intendedAt`) to arrival,
and counts duplicates and reorderings per (watcher, pump). It prints `ready` once every subscription is
confirmed, reads the measured window `[from, until]` (epoch seconds, JSON) from stdin, collects until it
closes, then writes its summary as JSON (several windows in turn, each `[from, until, path]`: each
summary written to its path). Mode `idle` connects
signed-in clients in steps and subscribes to nothing (memory per idle connection), printing `ready N`
after each step and waiting for a line on stdin before the next.
"""

import argparse
import asyncio
import json
import math
import resource
import sys
import time
from datetime import datetime
from pathlib import Path

import socketio

from bench.mqtt_async import AsyncMqtt
from bench.stats import DeliveryTracker, latency_summary
from protocol.events import DEVICE_PROGRESS, STREAM_SUBSCRIBED, SUBSCRIBE_DEVICE

CONNECT_CONCURRENCY = 20
CONNECT_TRIES = 3


class Window:
    """Deliveries of messages due in [measured_from, until) counted; the rest ignored (warm-up, snapshots)."""

    def __init__(self, measured_from: float, until: float) -> None:
        self.measured_from, self.until = measured_from, until
        self.tracker = DeliveryTracker()
        self.after_bridge_ms: list[float] = []  # the bridge's receive time (`receivedAt`) to arrival here
        self.counting = False  # while a window and its drain run: every report arriving counts in `arrived`
        self.arrived = 0  # however late: the work the server did in the window, a backlog's included

    def record(self, stream: tuple, intended_at: float | None, bridge_received: str | None = None) -> None:
        now = time.time()
        self.arrived += self.counting
        if intended_at is not None and self.measured_from <= intended_at < self.until:
            self.tracker.record(stream, intended_at, now)
            if bridge_received:
                self.after_bridge_ms.append((now - datetime.fromisoformat(bridge_received).timestamp()) * 1000)

    def summary(self) -> dict:
        """The tracker's counts and latencies, and the share of latency after the bridge received each message."""
        return {**self.tracker.summary(), "after_bridge": latency_summary(self.after_bridge_ms),
                "arrived": self.arrived}  # fmt: skip


async def sio_watcher(url: str, cookie: str, index: int, pumps: list[str], window: Window) -> socketio.AsyncClient:
    """One signed-in Socket.IO client (websocket) subscribed to `pumps`; returns once every one is confirmed."""
    client = socketio.AsyncClient(reconnection=False)
    confirmed: set[str] = set()
    all_confirmed = asyncio.Event()

    def on_progress(data: dict) -> None:
        progress = data["progress"]
        window.record((index, data["deviceId"]), progress.get("intendedAt"), progress.get("receivedAt"))

    def on_subscribed(data: dict) -> None:
        confirmed.add(data["deviceId"])
        if len(confirmed) == len(pumps):
            all_confirmed.set()

    client.on(DEVICE_PROGRESS, on_progress)
    client.on(STREAM_SUBSCRIBED, on_subscribed)
    for attempt in range(CONNECT_TRIES):  # a machine loaded by other work can miss a handshake
        try:
            await client.connect(url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=30)
            break
        except (socketio.exceptions.ConnectionError, TimeoutError):
            if attempt == CONNECT_TRIES - 1:
                raise
            await asyncio.sleep(1)
    for device_id in pumps:
        await client.emit(SUBSCRIBE_DEVICE, {"deviceId": device_id})
    if pumps:
        await asyncio.wait_for(all_confirmed.wait(), 60)
    return client


async def mqtt_watcher(broker: str, index: int, pumps: list[str], window: Window) -> AsyncMqtt:
    """One MQTT client subscribed straight to the pumps' progress topics (the floor: no bridge, no server)."""
    host, port = broker.split(":")

    def on_message(topic: str, payload: bytes) -> None:
        window.record((index, topic.split("/")[1]), json.loads(payload).get("intendedAt"))

    link = await AsyncMqtt(host, int(port), f"bench-floor-{index}", on_message=on_message).connect()
    link.subscribe([f"devices/{device_id}/progress" for device_id in pumps])
    await asyncio.sleep(0.2)  # SUBACKs: the generator's warm-up covers any stragglers
    return link


async def gather_bounded(factories: list) -> list:
    """Run coroutine factories with at most CONNECT_CONCURRENCY at a time (Daphne is not flooded with handshakes)."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def bounded(factory):
        async with gate:
            return await factory()

    return await asyncio.gather(*(bounded(factory) for factory in factories))


async def watch(args: argparse.Namespace, plan: dict) -> dict:
    """Connect every watcher, say ready; then for each window read from stdin (`[from, until]`, or
    `[from, until, path]` to write that window's summary there and say `done`), collect until it closes and
    a drain after it; at end of input disconnect. Returns the last window's summary."""
    window = Window(math.inf, math.inf)  # nothing counts until the orchestrator sends the window
    subscriptions = plan["subscriptions"]
    if args.mode == "sio":
        factories = [lambda i=i: sio_watcher(args.url, plan["cookies"][i], i, subscriptions[i], window)
                     for i in range(len(subscriptions))]  # fmt: skip
    else:
        factories = [lambda i=i: mqtt_watcher(args.broker, i, subscriptions[i], window)
                     for i in range(len(subscriptions))]  # fmt: skip
    clients = await gather_bounded(factories)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    summary: dict = {}
    while line := await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline):
        measured_from, until, *path = json.loads(line)
        window.tracker, window.after_bridge_ms, window.arrived = DeliveryTracker(), [], 0
        window.measured_from, window.until, window.counting = measured_from, until, True
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(max(0.0, window.until + args.drain - time.time()))
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        window.counting = False
        summary = {**window.summary(), "cpu_s": round(cpu, 2)}
        window.measured_from = window.until = math.inf
        if not path:
            break  # one window, as the orchestrator of one phase asks: its summary goes to --out
        Path(path[0]).write_text(json.dumps(summary))
        sys.stdout.write("done\n")
        sys.stdout.flush()
    for client in clients:
        await (client.disconnect() if args.mode == "sio" else client.close())
    return summary


async def idle(args: argparse.Namespace, plan: dict) -> dict:
    """Connect idle signed-in clients in steps; `ready N` after each; the next step on a line from stdin."""
    clients: list[socketio.AsyncClient] = []
    window = Window(0, 0)
    loop = asyncio.get_running_loop()
    for step in args.steps:
        wanted = range(len(clients), step)
        clients += await gather_bounded([lambda i=i: sio_watcher(args.url, plan["cookies"][i], i, [], window)
                                         for i in wanted])  # fmt: skip
        sys.stdout.write(f"ready {len(clients)}\n")
        sys.stdout.flush()
        await loop.run_in_executor(None, sys.stdin.readline)
    for client in clients:
        await client.disconnect()
    return {"connected": len(clients)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("sio", "mqtt", "idle"), required=True)
    parser.add_argument("--url", help="Daphne's base URL (sio, idle)")
    parser.add_argument("--broker", help="host:port (mqtt)")
    parser.add_argument("--plan", type=Path, required=True, help='JSON {"subscriptions": [[ids]], "cookies": [...]}')
    parser.add_argument("--drain", type=float, default=2.0, help="seconds to keep listening after --until")
    parser.add_argument("--steps", type=lambda text: [int(n) for n in text.split(",")], default=[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text())
    result = asyncio.run(idle(args, plan) if args.mode == "idle" else watch(args, plan))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
