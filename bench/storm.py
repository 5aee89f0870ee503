"""The storm phase: 100 clients x 20 pumps connecting and subscribing within 1 s while traffic flows.

Per target (the seed-style Node relay, the bare Python stack, PumpStream; `bench/relays.py`) and offered rate:
20 sentinel clients (20 pumps each, subscribed before) and the node generator at `rate` msg/s; at `stormAt`
the 100 storm clients start, evenly over 1 s, each sending `subscribe:device` for its 20 pumps (2,000
snapshots); 0.5 s in, 20 alarms are published 50 ms apart on 20 pumps the storm clients watch. Measured
(`bench/storm_watchers.py`): every subscription's delivery time, the live progress due in the storm's
first `window_s` at the sentinels (p99 and missing) and at the storm clients, and each alarm's arrival at
every watcher of its pump (live or in a snapshot). The watchers run in Node (`bench/node/storm_watchers.js`,
socket.io-client) unless `watchers="python"` (`bench/storm_watchers.py`, which starved first at 120 clients).
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.figures import TARGET_ORDER, rotated, server_cpu_us, spread
from bench.phases import cpu_per_message, generator_start, py_spy, python_module, subscriptions_plan, wait_line
from bench.stats import latency_summary
from bench.system import ResourceSampler
from protocol import events
from tests.support.processes import ROOT

STORM_CLIENTS, PER_CLIENT, SENTINELS = 100, 20, 20
SPREAD_S, WINDOW_S, DRAIN_S, WARMUP_S = 1.0, 8.0, 4.0, 3.0
ALARMS, ALARM_AT_S, ALARM_GAP_S = 20, 0.5, 0.05
# issue 17's storm targets
SNAPSHOT_LIMIT_MS, LIVE_P99_LIMIT_MS, ALARM_P99_LIMIT_MS = 5000.0, 250.0, 1000.0


def storms_run(targets: dict, rates: list[int], rounds: int, device_ids: list[str], cookies: list[str],
               workdir: Path, profile_dir: Path | None = None, batched: bool = False,
               watchers: str = "node") -> list[dict]:  # fmt: skip
    """Every (rate, round, target) storm, the targets rotated each round; `batched`: PumpStream's storm again
    right after, its clients sending one `subscribe:devices` each (target "pumpstream+devices")."""
    storms, number = [], 0
    for rate in rates:
        for round_number in range(rounds):
            for name in rotated(round_number, targets):
                variants = [("device", name)] + (
                    [("devices", f"{name}+devices")] if batched and name == "pumpstream" else []
                )
                for subscribe, label in variants:
                    result = storm_measure(targets[name], device_ids[:rate], cookies, workdir, number, profile_dir,
                                           subscribe=subscribe, watchers=watchers)  # fmt: skip
                    result.update(target=label, round=round_number)
                    storms.append(result)
                    number += 1
                    _say(result)
    return storms


def _say(result: dict) -> None:
    live, subs, alarms = result["live"]["sentinel"], result["subscriptions"], result["alarms"]
    print(f"storm {result['offered_msgs_per_s']:>5} msg/s round {result['round']} {result['target']:<10} "
          f"snapshots {subs['delivered']}/{subs['requested']} max {subs['max_ms']} ms  live p99 {live['p99_ms']} "
          f"lost {live['lost']}  alarms {alarms['received']}/{alarms['expected']} p99 {alarms['p99_ms']} ms  "
          f"load {result['load_avg_1m']}", flush=True)  # fmt: skip


def storm_measure(target, device_ids: list[str], cookies: list[str], workdir: Path, number: int,
                  profile_dir: Path | None = None, subscribe: str = "device",
                  watchers: str = "node") -> dict:  # fmt: skip
    """One storm against one target (`target` as `bench.phases.measure` takes it); `subscribe`: "device" (one
    request per pump) or "devices" (one `subscribe:devices` per client, PumpStream only); `watchers`: "node"
    or "python" (the harness)."""
    rate = len(device_ids)
    tag = f"storm-{rate}-{time.time_ns()}"
    sentinels = subscriptions_plan(device_ids, SENTINELS, PER_CLIENT)
    stormers = subscriptions_plan(device_ids, STORM_CLIENTS, PER_CLIENT)
    plan, pumps = workdir / f"plan-{tag}.json", workdir / f"pumps-{tag}.json"
    plan.write_text(json.dumps({"sentinels": sentinels, "storm": stormers, "cookies": cookies, "events": EVENT_NAMES}))
    pumps.write_text(json.dumps(device_ids))
    watch_out, gen_out, alarms_path = (workdir / f"{name}-{tag}.json" for name in ("watchers", "generator", "alarms"))
    process = _watchers_start(watchers, ["--url", target.daphne_url, "--plan", str(plan), "--out", str(watch_out),
                                         "--subscribe", subscribe])  # fmt: skip
    wait_line(process, "ready")
    start_at = time.time() + 1.0
    storm_at = start_at + WARMUP_S
    step = max(rate // ALARMS, 1)
    alarms = [{"deviceId": device_ids[(k * step + number) % rate],
               "at": round(storm_at + ALARM_AT_S + k * ALARM_GAP_S, 3)} for k in range(ALARMS)]  # fmt: skip
    alarms_path.write_text(json.dumps(alarms))
    order = {"stormAt": storm_at, "until": storm_at + WINDOW_S, "drain": DRAIN_S, "spread": SPREAD_S, "alarms": alarms}
    process.stdin.write((json.dumps(order) + "\n").encode())
    process.stdin.flush()
    load_before = os.getloadavg()[0]
    sampler = ResourceSampler(target.server_pids())
    schedule = ["--rate", "1", "--start-at", str(start_at), "--warmup", str(WARMUP_S), "--duration", str(WINDOW_S),
                "--alarms", str(alarms_path)]  # fmt: skip
    profilers = [py_spy(pid, profile_dir / f"storm-{name}-{tag}.txt") for name, pid in target.server_pids().items()
                 if name != "broker"] if profile_dir else []  # fmt: skip
    generator = generator_start("node", target.broker_address, pumps, schedule, gen_out)
    if generator.wait() != 0 or process.wait(timeout=WINDOW_S + 180) != 0:
        raise RuntimeError(f"generator exited {generator.returncode}, storm watchers {process.returncode}")
    resources = sampler.stop()
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)
    sent, seen = json.loads(gen_out.read_text()), json.loads(watch_out.read_text())
    if watchers == "node":
        seen = node_watchers_result(seen)
    due = sent.pop("due_per_pump")
    expected = sum(due.get(device_id, 0) for watched in sentinels for device_id in watched)
    live = {role: _live(part, expected if role == "sentinel" else None) for role, part in seen["live"].items()}
    return {"offered_msgs_per_s": rate, "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "live": live, "subscriptions": seen["subscriptions"], "alarms": seen["alarms"], "watchers": watchers,
            "watchers_cpu_s": seen.get("cpu_s"),
            "generator": {key: sent[key] for key in ("published", "unacked", "send_lag", "cpu_share")},
            "resources": resources, "cpu_us_per_msg": cpu_per_message(resources, sent["published"])}  # fmt: skip


EVENT_NAMES = {"progress": events.DEVICE_PROGRESS, "alarm": events.DEVICE_ALARM, "subscribed": events.STREAM_SUBSCRIBED,
               "subscribeDevice": events.SUBSCRIBE_DEVICE, "subscribeDevices": events.SUBSCRIBE_DEVICES}  # fmt: skip


def _watchers_start(harness: str, arguments: list[str]) -> subprocess.Popen:
    """The storm's watcher process: Node (socket.io-client) or Python (python-socketio), same plan and order."""
    if harness == "node":
        return subprocess.Popen(["node", str(ROOT / "bench" / "node" / "storm_watchers.js"), *arguments], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    return python_module("bench.storm_watchers", *arguments, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def node_watchers_result(raw: dict) -> dict:
    """The Node watchers' raw figures in the shape `bench/storm_watchers.py` writes (latencies summarised)."""
    subscriptions, alarms = raw["subscriptions"], raw["alarms"]
    return {
        "live": raw["live"],
        "subscriptions": {"requested": subscriptions["requested"], "delivered": len(subscriptions["delivered_ms"]),
                          **latency_summary(subscriptions["delivered_ms"])},
        "connect_failures": raw["connect_failures"],
        "alarms": {"injected": alarms["injected"], "expected": alarms["expected"],
                   "received": len(alarms["arrived_ms"]), **latency_summary(alarms["arrived_ms"])},
        "cpu_s": raw.get("cpu_s"),
    }  # fmt: skip


def _live(part: dict, expected: int | None) -> dict:
    summary = {"received": part["received"], "duplicates": part["duplicates"], "reorders": part["reorders"],
               **latency_summary(part["latencies_ms"])}  # fmt: skip
    if expected is not None:
        summary.update(expected=expected, lost=max(expected - part["received"], 0))
    return summary


def summarise(storms: list[dict]) -> dict:
    """{rate: {target: medians and ranges over the rounds}}."""
    summary: dict = {}
    for rate in sorted({storm["offered_msgs_per_s"] for storm in storms}):
        figures = {}
        for name in TARGET_ORDER:
            mine = [storm for storm in storms if storm["offered_msgs_per_s"] == rate and storm["target"] == name]
            if mine:
                figures[name] = {
                    "runs": len(mine),
                    "snapshot_max_ms": spread([s["subscriptions"]["max_ms"] for s in mine]),
                    "snapshot_p99_ms": spread([s["subscriptions"]["p99_ms"] for s in mine]),
                    "snapshots_undelivered": spread([s["subscriptions"]["requested"] - s["subscriptions"]["delivered"]
                                                     for s in mine]),
                    "live_p99_ms": spread([s["live"]["sentinel"]["p99_ms"] for s in mine]),
                    "live_lost": spread([s["live"]["sentinel"]["lost"] for s in mine]),
                    "storm_clients_live_p99_ms": spread([s["live"]["storm"]["p99_ms"] for s in mine]),
                    "alarm_p99_ms": spread([s["alarms"]["p99_ms"] for s in mine]),
                    "alarms_missing": spread([s["alarms"]["expected"] - s["alarms"]["received"] for s in mine]),
                    "cpu_us_per_msg": spread([server_cpu_us({**s, "target": name}) for s in mine]),
                    "load_avg_1m": spread([s["load_avg_1m"][0] for s in mine]),
                }  # fmt: skip
        summary[str(rate)] = figures
    return summary


def targets_against_issue(summary: dict) -> list[str]:
    """Issue 17's storm targets for PumpStream, with the comparisons' medians from the same run (statements)."""
    lines = []
    for rate, figures in summary.items():
        ours = figures.get("pumpstream")
        if not ours:
            continue
        others = "; ".join(f"{name}: snapshots max {f['snapshot_max_ms']['median']} ms, live p99 "
                           f"{f['live_p99_ms']['median']} ms, alarms p99 {f['alarm_p99_ms']['median']} ms"
                           for name, f in figures.items() if name != "pumpstream")  # fmt: skip
        checks = [
            ("every snapshot within 5 s", ours["snapshot_max_ms"]["max"], SNAPSHOT_LIMIT_MS,
             ours["snapshots_undelivered"]["max"] == 0),
            ("live p99 <= 250 ms", ours["live_p99_ms"]["max"], LIVE_P99_LIMIT_MS, ours["live_lost"]["max"] == 0),
            ("alarms p99 <= 1 s", ours["alarm_p99_ms"]["max"], ALARM_P99_LIMIT_MS, ours["alarms_missing"]["max"] == 0),
        ]  # fmt: skip
        for label, worst, limit, complete in checks:
            met = worst is not None and worst <= limit and complete
            lines.append(f"storm {rate} msg/s, {label}: PumpStream worst of {ours['runs']} runs {worst} ms "
                         f"(complete: {complete}): {'met' if met else 'NOT met'}")  # fmt: skip
        lines.append(f"storm {rate} msg/s comparisons (medians): {others}")
    return lines
