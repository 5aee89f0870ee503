"""`make bench LEVEL=smoke|hospital|large|ramp`: the whole system driven end to end, measured against the floor.

    .venv/bin/python -m bench.run --level smoke

Each level runs the same generator twice against a fresh Mosquitto: first with MQTT watchers on the broker
(the floor), then through the bridge and Daphne to signed-in Socket.IO clients; then it measures Daphne's
memory per idle client. `ramp` raises the offered load until loss or p99 > 100 ms, then bisects.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.phases import Load, idle_memory, measure
from bench.system import System, cookies_create, django_configure, pumps_create


@dataclass(frozen=True)
class Level:
    """A load shape, the idle-client counts for the memory measurement, and (ramp) the offered rates to try."""

    load: Load
    memory_steps: tuple[int, ...] = ()
    ramp_msgs_per_s: tuple[int, ...] = ()
    bisections: int = 3
    search: bool = True  # ramp: stop at the first unsustainable rate and bisect (else: measure every rate given)


LEVELS = {
    "smoke": Level(Load(pumps=100, rate_hz=1.0, clients=20, per_client=10, duration_s=20), (0, 100, 200)),
    "hospital": Level(Load(pumps=400, rate_hz=1.0, clients=100, per_client=20, duration_s=60), (0, 500, 1000)),
    "large": Level(
        Load(pumps=4000, rate_hz=1.0, clients=100, per_client=40, duration_s=60, drain_s=10), (0, 500, 1000)
    ),
    "ramp": Level(
        Load(pumps=4000, rate_hz=0.25, clients=100, per_client=40, duration_s=15),
        ramp_msgs_per_s=(1000, 2000, 3000, 4000, 5000),
    ),  # fmt: skip
}
P99_LIMIT_MS = 100.0


def sustainable(phase: dict) -> bool:
    """No loss and p99 within 100 ms."""
    d = phase["deliveries"]
    return d["lost"] == 0 and d["p99_ms"] is not None and d["p99_ms"] <= P99_LIMIT_MS


def run_level(name: str, level: Level, workdir: Path, window_ms: float | None = None,
              profile_dir: Path | None = None) -> dict:  # fmt: skip
    """Floor, system and idle memory for one level (or the ramp); every process stopped afterwards."""
    django_configure(workdir / "bench.sqlite3")
    from django.conf import settings

    if window_ms is None:  # the bridge's own default, recorded with the result
        window_ms = settings.PUMPSTREAM["BRIDGE_BATCH_WINDOW_MS"]
    bridge_args = ("--batch-window-ms", str(window_ms))
    device_ids = pumps_create(level.load.pumps)
    most = max(level.load.clients, *level.memory_steps, 0)
    cookies = cookies_create(most)
    result: dict = {
        "level": name,
        "phases": [],
        "bridge_args": " ".join(bridge_args),
        "bridge_window_ms": window_ms,
        "bridge_batching": "adaptive",
    }  # since 2026-12-01: a batch waits as long as the last commit took
    if not level.ramp_msgs_per_s:
        floor = System(workdir, workdir / "bench.sqlite3").start_broker()
        try:
            result["phases"].append(measure(floor, level.load, device_ids, cookies, workdir, floor=True))
        finally:
            floor.stop()
    system = System(workdir, workdir / "bench.sqlite3", bridge_args=bridge_args).start_broker().start_servers()
    try:
        if level.ramp_msgs_per_s:
            result["phases"] += ramp(system, level, device_ids, cookies, workdir, result, profile_dir)
        else:
            result["phases"].append(measure(system, level.load, device_ids, cookies, workdir, floor=False,
                                            profile_dir=profile_dir))  # fmt: skip
        if level.memory_steps:
            result["memory"] = idle_memory(system, cookies, list(level.memory_steps), workdir)
    finally:
        system.stop()
    return result


def ramp(system: System, level: Level, device_ids: list[str], cookies: list[str], workdir: Path,
         result: dict, profile_dir: Path | None = None) -> list[dict]:  # fmt: skip
    """Raise the offered load until it is not sustainable, then bisect between the last good and first bad."""
    phases: list[dict] = []

    def step(msgs_per_s: float) -> bool:
        load = replace(level.load, rate_hz=msgs_per_s / level.load.pumps)
        phases.append(measure(system, load, device_ids, cookies, workdir, floor=False, profile_dir=profile_dir))
        ok = sustainable(phases[-1])
        d = phases[-1]["deliveries"]
        verdict = "sustained" if ok else "NOT sustained"
        sys.stdout.write(f"ramp: {msgs_per_s:,.0f} msg/s offered: {verdict} (p99 {d['p99_ms']} ms, lost {d['lost']})\n")
        sys.stdout.flush()
        time.sleep(10)  # let a backlog drain before the next step
        return ok

    good, bad = 0.0, None
    for rate in level.ramp_msgs_per_s:
        if not step(rate) and level.search:
            bad = rate
            break
        good = rate
    if not level.search:
        return phases
    for _ in range(level.bisections if bad is not None else 0):
        middle = round((good + bad) / 2 / 50) * 50
        if middle in (good, bad):
            break
        good, bad = (middle, bad) if step(middle) else (good, middle)
    result["max_sustainable_msgs_per_s"] = int(good)
    return phases


def targets(result: dict) -> list[str]:
    """Where the run stands against issue 7's targets (statements, never assertions)."""
    lines = []
    phases = {phase["phase"]: phase["deliveries"] for phase in result["phases"]}
    if "floor" in phases and "system" in phases:
        floor, ours = phases["floor"], phases["system"]
        limit = 2 * floor["p99_ms"] + 5 if floor["p99_ms"] is not None else None
        met = limit is not None and ours["p99_ms"] is not None and ours["p99_ms"] <= limit and ours["lost"] == 0
        lines.append(f"p99 {ours['p99_ms']} ms against 2 x floor p99 + 5 ms = {limit and round(limit, 2)} ms, "
                     f"lost {ours['lost']}: {'met' if met else 'NOT met'}")  # fmt: skip
        offered = result["phases"][-1]["offered_msgs_per_s"]
        ok = ours["lost"] == 0 and ours["p99_ms"] is not None and ours["p99_ms"] < P99_LIMIT_MS
        lines.append(f"{offered:,.0f} msg/s with zero loss and p99 under 100 ms: {'met' if ok else 'NOT met'}")
    if result.get("memory"):
        per_client = result["memory"]["kib_per_idle_client"]
        lines.append(f"{per_client} KiB per idle client against 50 KiB: {'met' if per_client < 50 else 'NOT met'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", choices=sorted(LEVELS), default="smoke")
    parser.add_argument("--duration", type=float, help="measured seconds per phase (default: the level's)")
    parser.add_argument("--bridge-window-ms", type=float, help="the bridge's batch window (default: its own)")
    parser.add_argument(
        "--rates",
        type=lambda text: [int(n) for n in text.split(",")],
        help="ramp only: these offered rates (msg/s) and no bisection",
    )
    parser.add_argument("--py-spy", type=Path, help="write py-spy flame graphs of the bridge and Daphne here")
    args = parser.parse_args()
    level = LEVELS[args.level]
    if args.rates:
        level = replace(level, ramp_msgs_per_s=tuple(args.rates), search=False)
    if args.duration:
        level = replace(level, load=replace(level.load, duration_s=args.duration))
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{args.level}-"))
    load_before = round(os.getloadavg()[0], 2)
    result = run_level(args.level, level, workdir, args.bridge_window_ms, args.py_spy)
    result.update(when=datetime.now(UTC).isoformat(timespec="seconds"),
                  load_avg_1m_before=load_before,
                  machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                  workdir=str(workdir))  # fmt: skip
    result["targets"] = targets(result)
    paths = report.write(result, datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    sys.stdout.write(report.markdown(result) + "\nwritten: " + ", ".join(map(str, paths)) + "\n")


if __name__ == "__main__":
    main()
