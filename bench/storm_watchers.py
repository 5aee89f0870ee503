"""The storm's watchers, on one asyncio loop: steady sentinels, then C clients connecting and subscribing at once.

Sentinels (connected and subscribed before) time the live progress due during the storm and count what
they miss. At the storm's start, client i of C connects at `stormAt + i / C * spread` and sends one
`subscribe:device` per pump, as today's pages do; each subscription's delivery time is from the client's
start to its `stream:subscribed` (the snapshot's events follow it in the same burst). Every watcher of a
pump that got an injected alarm (`message: "injectedAt=<t>"`) times its first `device:alarm` for it, live
or in a snapshot. Prints `ready`, reads `{"stormAt", "until", "drain", "spread", "alarms"}` from stdin.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import socketio

from bench.stats import DeliveryTracker, latency_summary
from bench.watchers import gather_bounded
from protocol.events import DEVICE_ALARM, DEVICE_PROGRESS, STREAM_SUBSCRIBED, SUBSCRIBE_DEVICE, SUBSCRIBE_DEVICES


class Storm:
    """What every watcher saw, keyed by role ("sentinel" or "storm")."""

    def __init__(self) -> None:
        self.measured_from = self.until = float("inf")
        self.live = {"sentinel": DeliveryTracker(), "storm": DeliveryTracker()}
        self.injected: dict[str, float] = {}  # pump -> injection time of this storm's alarm
        self.alarm_ms: dict[tuple[int, str], float] = {}  # (watcher, pump) -> ms from injection to arrival
        self.subscribed_ms: list[float] = []  # client start -> stream:subscribed, per subscription
        self.connect_failures: list[str] = []

    def progress(self, role: str, watcher: int, data: dict) -> None:
        intended = data["progress"].get("intendedAt")
        if intended is not None and self.measured_from <= intended < self.until:
            self.live[role].record((watcher, data["deviceId"]), intended, time.time())

    def alarm(self, watcher: int, data: dict) -> None:
        at = self.injected.get(data["deviceId"])
        message = (data.get("alarm") or {}).get("message") or ""
        if at is None or f"injectedAt={at}" not in message or (watcher, data["deviceId"]) in self.alarm_ms:
            return
        self.alarm_ms[(watcher, data["deviceId"])] = (time.time() - at) * 1000


async def watcher(url: str, cookie: str, index: int, pumps: list[str], role: str, storm: Storm,
                  started_at: float | None = None, batched: bool = False) -> socketio.AsyncClient:  # fmt: skip
    """One signed-in client subscribing to `pumps`, one request each (`batched`: one `subscribe:devices`);
    returns once all are confirmed (or 60 s)."""
    client = socketio.AsyncClient(reconnection=False)
    confirmed: set[str] = set()
    done = asyncio.Event()

    def on_subscribed(data: dict) -> None:
        if data["deviceId"] not in confirmed:
            confirmed.add(data["deviceId"])
            if started_at is not None:
                storm.subscribed_ms.append((time.time() - started_at) * 1000)
        if len(confirmed) == len(pumps):
            done.set()

    client.on(DEVICE_PROGRESS, lambda data: storm.progress(role, index, data))
    client.on(DEVICE_ALARM, lambda data: storm.alarm(index, data))
    client.on(STREAM_SUBSCRIBED, on_subscribed)
    try:
        await client.connect(url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=30)
    except (socketio.exceptions.ConnectionError, OSError) as error:
        storm.connect_failures.append(f"{role} {index}: {error}")
        return client  # its subscriptions count as not delivered
    if batched:
        await client.emit(SUBSCRIBE_DEVICES, {"deviceIds": pumps})
    else:
        for device_id in pumps:
            await client.emit(SUBSCRIBE_DEVICE, {"deviceId": device_id})
    try:
        await asyncio.wait_for(done.wait(), 60)
    except TimeoutError:
        pass  # counted as not delivered
    return client


async def run(args: argparse.Namespace, plan: dict) -> dict:
    storm = Storm()
    sentinels = plan["sentinels"]
    clients = await gather_bounded([lambda i=i: watcher(args.url, plan["cookies"][len(plan["storm"]) + i], i,
                                                        sentinels[i], "sentinel", storm)
                                    for i in range(len(sentinels))])  # fmt: skip
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    order = json.loads(line)
    storm.measured_from, storm.until = order["stormAt"], order["until"]
    storm.injected = {alarm["deviceId"]: alarm["at"] for alarm in order["alarms"]}
    storm_plan, spread = plan["storm"], order["spread"]
    offset = len(sentinels)

    async def storm_client(i: int) -> socketio.AsyncClient:
        start = order["stormAt"] + i / len(storm_plan) * spread
        await asyncio.sleep(max(0.0, start - time.time()))
        return await watcher(args.url, plan["cookies"][i], offset + i, storm_plan[i], "storm", storm, start,
                             batched=args.subscribe == "devices")  # fmt: skip

    stormers = asyncio.gather(*(storm_client(i) for i in range(len(storm_plan))))
    await asyncio.sleep(max(0.0, order["until"] + order["drain"] - time.time()))
    clients += await stormers
    for client in clients:
        if client.connected:
            await client.disconnect()
    watchers_of = {}
    for index, pumps in enumerate([*sentinels, *storm_plan]):
        for device_id in pumps:
            watchers_of.setdefault(device_id, []).append(index)
    expected_alarms = sum(len(watchers_of.get(device_id, [])) for device_id in storm.injected)
    return {
        "live": {role: tracker.summary() for role, tracker in storm.live.items()},
        "subscriptions": {"requested": sum(map(len, storm_plan)), "delivered": len(storm.subscribed_ms),
                          **latency_summary(storm.subscribed_ms)},
        "connect_failures": storm.connect_failures,
        "alarms": {"injected": len(storm.injected), "expected": expected_alarms, "received": len(storm.alarm_ms),
                   **latency_summary(storm.alarm_ms.values())},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--plan", type=Path, required=True, help='{"sentinels": [[ids]], "storm": [[ids]], "cookies"}')
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--subscribe",
        choices=("device", "devices"),
        default="device",
        help="storm clients: one subscribe:device per pump, or one subscribe:devices each",
    )
    args = parser.parse_args()
    args.out.write_text(json.dumps(asyncio.run(run(args, json.loads(args.plan.read_text())))))


if __name__ == "__main__":
    main()
