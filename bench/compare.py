"""PumpStream against its comparisons in one run: the same generator, the targets alternated, medians and ranges.

    .venv/bin/python -m bench.compare --rates 400,1000 --rounds 3          # what `make bench` runs, then the storm
    .venv/bin/python -m bench.compare --rates 2000 --rounds 3 --generator python

For each offered rate (pumps at 1 Hz each, 100 signed-in clients x 20 pumps), each round measures the three
targets (`bench/relays.py`: the seed-style Node relay, the bare Python stack; then PumpStream), in an order
rotated every round so that none always runs first or last on this shared machine. Per target: median and
range over the rounds of p50/p99, loss and the CPU per message of each process (CPU seconds from /proc over
the phase / messages published), and every PumpStream figure as a ratio to each comparison's.
"""

import argparse
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import compare_report, idle, storm
from bench.figures import TARGET_ORDER, rotated, server_cpu_us, spread
from bench.phases import Load, measure, node_packages_ready
from bench.relays import targets_start, targets_stop
from bench.system import cookies_create, django_configure, pumps_create


def load_for(rate: int, duration_s: float, per_client: int = 20) -> Load:
    """`rate` pumps at 1 Hz, 100 clients x `per_client` pumps."""
    return Load(pumps=rate, rate_hz=1.0, clients=100, per_client=per_client, duration_s=duration_s)


def rounds_run(targets: dict, rates: list[int], rounds: int, device_ids: list[str], cookies: list[str], workdir,
               duration_s: float, generator_kind: str) -> list[dict]:  # fmt: skip
    """Every (rate, round, target) phase, the targets rotated each round."""
    phases = []
    for rate in rates:
        load = load_for(rate, duration_s)
        for number in range(rounds):
            for name in rotated(number, targets):
                phase = measure(targets[name], load, device_ids[:rate], cookies, workdir, floor=False,
                                generator_kind=generator_kind)  # fmt: skip
                phase.update(target=name, round=number)
                phases.append(phase)
                _say(phase)
    return phases


def _say(phase: dict) -> None:
    d = phase["deliveries"]
    print(f"{phase['offered_msgs_per_s']:>6.0f} msg/s  round {phase['round']}  {phase['target']:<10} "
          f"p50 {d['p50_ms']} p99 {d['p99_ms']} ms  lost {d['lost']}  CPU/msg {server_cpu_us(phase)} µs  "
          f"load {phase['load_avg_1m']}", flush=True)  # fmt: skip


def summarise(phases: list[dict]) -> dict:
    """{rate: {target: figures}, and PumpStream's ratios to each comparison (of medians, and per round)}."""
    summary: dict = {}
    for rate in sorted({phase["offered_msgs_per_s"] for phase in phases}):
        at_rate = [phase for phase in phases if phase["offered_msgs_per_s"] == rate]
        figures = {}
        for name in TARGET_ORDER:
            mine = [phase for phase in at_rate if phase["target"] == name]
            if not mine:
                continue
            processes = sorted({p for phase in mine for p in phase["cpu_us_per_msg"]})
            figures[name] = {
                "runs": len(mine),
                "p50_ms": spread([phase["deliveries"]["p50_ms"] for phase in mine]),
                "p99_ms": spread([phase["deliveries"]["p99_ms"] for phase in mine]),
                "lost": spread([phase["deliveries"]["lost"] for phase in mine]),
                "cpu_us_per_msg": spread([server_cpu_us(phase) for phase in mine]),
                "cpu_us_per_msg_by_process": {p: spread([phase["cpu_us_per_msg"].get(p) for phase in mine])
                                              for p in processes},
                "generator_cpu_share": spread([phase["generator"]["cpu_share"] for phase in mine]),
                "load_avg_1m": spread([phase["load_avg_1m"][0] for phase in mine]),
            }  # fmt: skip
        figures["ratios"] = _ratios(figures, at_rate)
        summary[str(int(rate))] = figures
    return summary


def _ratios(figures: dict, at_rate: list[dict]) -> dict:
    ours = figures.get("pumpstream")
    ratios = {}
    for name in ("bare", "node"):
        theirs = figures.get(name)
        if not ours or not theirs:
            continue
        per_round = []
        for number in sorted({phase["round"] for phase in at_rate}):
            pair = {phase["target"]: phase for phase in at_rate if phase["round"] == number}
            if "pumpstream" in pair and name in pair:
                per_round.append(_safe_ratio(server_cpu_us(pair["pumpstream"]), server_cpu_us(pair[name])))
        ratios[name] = {
            "p99": _safe_ratio(ours["p99_ms"]["median"], theirs["p99_ms"]["median"]),
            "p99_minus_ms": _diff(ours["p99_ms"]["median"], theirs["p99_ms"]["median"]),
            "cpu_per_msg": _safe_ratio(ours["cpu_us_per_msg"]["median"], theirs["cpu_us_per_msg"]["median"]),
            "cpu_per_msg_per_round": spread(per_round),
        }
    return ratios


def _safe_ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value is not None and base else None


def _diff(value: float | None, base: float | None) -> float | None:
    return round(value - base, 2) if value is not None and base is not None else None


def targets_against_issue(summary: dict) -> list[str]:
    """Issue 17's cost and latency targets, per rate, against the same run's bare stack (statements only)."""
    lines = []
    for rate, figures in summary.items():
        ours, bare = figures.get("pumpstream"), figures.get("bare")
        if not ours or not bare:
            continue
        cpu_ratio = figures["ratios"]["bare"]["cpu_per_msg"]
        lines.append(f"{rate} msg/s cost: PumpStream {ours['cpu_us_per_msg']['median']} µs/msg = {cpu_ratio} x the "
                     f"bare stack's {bare['cpu_us_per_msg']['median']} (target <= 1.5): "
                     f"{'met' if cpu_ratio is not None and cpu_ratio <= 1.5 else 'NOT met'}")  # fmt: skip
        limit = bare["p99_ms"]["median"] + 3 if bare["p99_ms"]["median"] is not None else None
        p99 = ours["p99_ms"]["median"]
        met = limit is not None and p99 is not None and p99 <= limit
        lines.append(f"{rate} msg/s latency: PumpStream p99 {p99} ms against the bare stack's p99 + 3 = "
                     f"{limit and round(limit, 2)} ms: {'met' if met else 'NOT met'}")  # fmt: skip
        if int(rate) >= 2000:
            ok = ours["lost"]["max"] == 0 and p99 is not None and p99 <= 100
            lines.append(f"{rate} msg/s sustained, 0 loss and p99 <= 100 ms: {'met' if ok else 'NOT met'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=_ints, default=[400, 1000], help="offered msg/s (pumps at 1 Hz each)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the three targets per rate")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase")
    parser.add_argument("--generator", choices=("node", "python"), default="node")
    parser.add_argument("--storm-rates", type=_ints, default=[], help="storm phase at these msg/s (bench/storm.py)")
    parser.add_argument("--storm-rounds", type=int, default=3)
    parser.add_argument("--storm-watchers", choices=("node", "python"), default="node",
                        help="the storm's 120 watchers: socket.io-client (cheap) or python-socketio")  # fmt: skip
    parser.add_argument(
        "--storm-batched",
        action="store_true",
        help="also PumpStream's storm with one subscribe:devices per client (pumpstream+devices)",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=0.0,
        help="first, each target's idle CPU over this many seconds, without and with idle clients",
    )
    parser.add_argument("--idle-clients", type=int, default=100)
    parser.add_argument("--py-spy", type=Path, help="storms: py-spy raw stacks of the servers into this directory")
    parser.add_argument("--before", type=Path, help="also PumpStream from this checkout (before/after in one run)")
    parser.add_argument("--only", help="run only these targets (comma-separated: node,bare,pumpstream)")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    node_storm = bool(args.storm_rates) and args.storm_watchers == "node"
    if args.generator == "node" or only is None or "node" in only or node_storm:
        node_packages_ready()  # a Python-only run needs none of them
    workdir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    database = workdir / "bench.sqlite3"
    django_configure(database)
    device_ids = pumps_create(max(args.rates + args.storm_rates))
    cookies = cookies_create(200)
    result: dict = {"level": "compare", "load_avg_1m_before": round(os.getloadavg()[0], 2), "generator": args.generator,
                    "storm_watchers": args.storm_watchers,
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                    "workdir": str(workdir)}  # fmt: skip
    targets = targets_start(workdir, database, only=only, before=args.before)
    try:
        result["idle"] = {name: idle.idle_cpu(name, targets[name], cookies, workdir, args.idle, args.idle_clients)
                          for name in TARGET_ORDER if name in targets and args.idle}  # fmt: skip
        result["phases"] = rounds_run(targets, args.rates, args.rounds, device_ids, cookies, workdir, args.duration,
                                      args.generator)  # fmt: skip
        result["storms"] = storm.storms_run(targets, args.storm_rates, args.storm_rounds, device_ids, cookies, workdir,
                                            args.py_spy, args.storm_batched,
                                            args.storm_watchers) if args.storm_rates else []  # fmt: skip
    finally:
        targets_stop(targets)
    result.update(when=datetime.now(UTC).isoformat(timespec="seconds"), summary=summarise(result["phases"]),
                  storm_summary=storm.summarise(result["storms"]))  # fmt: skip
    result["targets"] = (targets_against_issue(result["summary"]) + storm.targets_against_issue(result["storm_summary"])
                         + idle.targets_against_issue(result["idle"]))  # fmt: skip
    paths = compare_report.write(result, datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    print(compare_report.markdown(result) + "\nwritten: " + ", ".join(map(str, paths)))


def _ints(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


if __name__ == "__main__":
    main()
