"""Idle cost (issue 17): each target's server processes' share of one core over a window with no traffic.

Two windows per target: with no client at all, and with `clients` signed-in Socket.IO clients connected and
idle (`bench/watchers.py --mode idle`: connected, nothing subscribed, Engine.IO pings only). No pump
publishes; the broker is running. CPU from /proc (psutil) of every server process, as a percentage of one
core over the window. Issue 17's target: the bridge and the web process each at most 1 % of a core.
"""

import json
import subprocess
import time
from pathlib import Path

from bench.figures import SERVER_PROCESSES
from bench.phases import python_module, wait_line
from bench.system import ResourceSampler

IDLE_LIMIT_PERCENT = 1.0
SETTLE_S = 5.0


def idle_cpu(name: str, target, cookies: list[str], workdir: Path, seconds: float, clients: int) -> dict:
    """{"no clients": {process: % of a core}, "<n> idle clients": {...}} for one target."""
    time.sleep(SETTLE_S)  # start-up and the previous phase's drain are not idle
    result = {"no clients": _window(target, seconds)}
    plan = workdir / f"plan-idle-cpu-{name}.json"
    plan.write_text(json.dumps({"subscriptions": [], "cookies": cookies}))
    watchers = python_module("bench.watchers", "--mode", "idle", "--url", target.daphne_url, "--plan", str(plan),
                             "--steps", str(clients), "--out", str(workdir / f"idle-cpu-{name}.json"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        connected = int(wait_line(watchers, "ready").split()[1])
        time.sleep(SETTLE_S)
        result[f"{connected} idle clients"] = _window(target, seconds)
        watchers.stdin.write(b"\n")
        watchers.stdin.flush()
        watchers.wait(timeout=120)
    finally:
        if watchers.poll() is None:
            watchers.kill()
    return result


def _window(target, seconds: float) -> dict[str, float]:
    sampler = ResourceSampler({name: pid for name, pid in target.server_pids().items() if name != "broker"})
    time.sleep(seconds)
    return {name: round(figures["cpu_s"] / seconds * 100, 2) for name, figures in sampler.stop().items()}


def targets_against_issue(idle: dict) -> list[str]:
    """The idle target for PumpStream's bridge and web process, with the comparisons from the same run."""
    lines = []
    ours = idle.get("pumpstream") or {}
    for window, per_process in ours.items():
        for process in SERVER_PROCESSES["pumpstream"]:
            percent = per_process.get(process)
            met = percent is not None and percent <= IDLE_LIMIT_PERCENT
            lines.append(f"idle, {window}: PumpStream {process} {percent} % of a core over the window "
                         f"(target <= {IDLE_LIMIT_PERCENT} %): {'met' if met else 'NOT met'}")  # fmt: skip
    others = "; ".join(f"{name}: {windows}" for name, windows in idle.items() if name != "pumpstream")
    if others:
        lines.append(f"idle comparisons (% of a core): {others}")
    return lines
