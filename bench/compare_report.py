"""The comparison run as JSON, Markdown tables (medians and ranges, ratios) and a plot (`compare-<stamp>.*`)."""

import json
from pathlib import Path

from bench.figures import TARGET_ORDER

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = {"node": "seed-style Node relay", "bare": "bare Python stack", "before": "PumpStream before",
         "pumpstream": "PumpStream", "pumpstream+devices": "PumpStream, subscribe:devices"}  # fmt: skip


def span(figure: dict) -> str:
    """A figure's median and, when they differ, its range over the rounds: `12.5 (10.1–14.2)` (also for the
    other levels' reports)."""
    if figure["median"] is None:
        return "–"
    if figure["min"] == figure["max"]:
        return f"{figure['median']:g}"
    return f"{figure['median']:g} ({figure['min']:g}–{figure['max']:g})"


def steady_table(summary: dict) -> list[str]:
    """Per rate and target: p50, p99, loss, CPU µs per message (by process), load; PumpStream's ratios."""
    lines = ["| msg/s | target | runs | p50 ms | p99 ms | lost | CPU µs/msg (server) | by process | generator CPU | "
             "load 1m |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for rate, figures in summary.items():
        for name in TARGET_ORDER:
            f = figures.get(name)
            if not f:
                continue
            by_process = ", ".join(f"{p} {span(v)}" for p, v in f["cpu_us_per_msg_by_process"].items())
            lines.append(f"| {rate} | {NAMES[name]} | {f['runs']} | {span(f['p50_ms'])} | {span(f['p99_ms'])} | "
                         f"{span(f['lost'])} | {span(f['cpu_us_per_msg'])} | {by_process} | "
                         f"{span(f['generator_cpu_share'])} | {span(f['load_avg_1m'])} |")  # fmt: skip
    lines += ["", "| msg/s | PumpStream / bare: p99 | p99 − bare p99 ms | CPU/msg (of medians) | CPU/msg per round | "
              "PumpStream / Node: p99 | CPU/msg |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for rate, figures in summary.items():
        bare, node = figures["ratios"].get("bare"), figures["ratios"].get("node")
        if bare and node:
            per_round = span(bare["cpu_per_msg_per_round"])
            lines.append(f"| {rate} | {bare['p99']} | {bare['p99_minus_ms']} | {bare['cpu_per_msg']} | {per_round} | "
                         f"{node['p99']} | {node['cpu_per_msg']} |")  # fmt: skip
    return lines


def storm_table(summary: dict) -> list[str]:
    """Per rate and target: snapshots, live p99 during the storm, alarms, CPU."""
    lines = ["| msg/s | target | runs | snapshots max ms | snapshots p99 ms | undelivered | live p99 ms (sentinels) | "
             "live lost | storm clients' live p99 ms | alarms p99 ms | alarms missing | CPU µs/msg | load 1m |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for rate, figures in summary.items():
        for name in TARGET_ORDER:
            f = figures.get(name)
            if f:
                cells = [f[key] for key in ("snapshot_max_ms", "snapshot_p99_ms", "snapshots_undelivered",
                                            "live_p99_ms", "live_lost", "storm_clients_live_p99_ms", "alarm_p99_ms",
                                            "alarms_missing", "cpu_us_per_msg", "load_avg_1m")]  # fmt: skip
                lines.append(f"| {rate} | {NAMES[name]} | {f['runs']} | " + " | ".join(map(span, cells)) + " |")
    return lines


def markdown(result: dict) -> str:
    """The run: steady-state comparison, storm, targets. Figures are medians (range) over the rounds."""
    lines = [
        f"**compare** ({result['when']}, {result['machine']}, generator: {result['generator']}, load before "
        f"{result['load_avg_1m_before']})",
        "",
        "Steady state, 100 clients x 20 pumps, medians (range):",
        "",
    ]
    lines += steady_table(result["summary"]) if result["summary"] else ["(none)"]
    if result.get("storm_summary"):
        lines += ["", "Storm, 100 clients x 20 pumps subscribing within 1 s, 20 alarms mid-storm:", ""]
        lines += storm_table(result["storm_summary"])
    if result.get("idle"):
        lines += ["", "Idle, no traffic: % of one core per server process over the window:", "",
                  "| target | window | % of a core |", "|---|---|---|"]  # fmt: skip
        for name, windows in result["idle"].items():
            for window, per_process in windows.items():
                cells = ", ".join(f"{process} {percent}" for process, percent in per_process.items())
                lines.append(f"| {NAMES[name]} | {window} | {cells} |")
    lines += ["", *(f"- {target}" for target in result.get("targets", []))]
    return "\n".join(lines) + "\n"


def write(result: dict, stamp: str) -> list[Path]:
    """`compare-<stamp>.json` and `.md` in bench/results."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"compare-{stamp}"
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=1))
    md_path.write_text(markdown(result))
    return [json_path, md_path]
