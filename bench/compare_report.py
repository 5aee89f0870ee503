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


PROCESS_COLOURS = {"relay": "#7f7f7f", "bridge": "#1f77b4", "daphne": "#ff7f0e"}


def plot(result: dict, path: Path) -> None:
    """Per rate, each target's steady CPU µs per message stacked by server process (medians over the rounds), and
    its p50 and p99 (log scale, the rounds' range as a bar): the cost and latency targets at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    rates = list(summary)
    figure, (cost, latency) = plt.subplots(1, 2, figsize=(12, 5))
    width = 0.8 / max(len(TARGET_ORDER), 1)
    for index, rate in enumerate(rates):
        present = [name for name in TARGET_ORDER if name in summary[rate]]
        for slot, name in enumerate(present):
            figures = summary[rate][name]
            x = index + (slot - (len(present) - 1) / 2) * width
            bottom = 0.0
            for process, colour in PROCESS_COLOURS.items():
                value = figures["cpu_us_per_msg_by_process"].get(process, {}).get("median")
                if value:
                    cost.bar(x, value, width * 0.9, bottom=bottom, color=colour,
                             label=process if index == 0 and slot == present.index(name) else None)  # fmt: skip
                    bottom += value
            cost.text(x, bottom, NAMES[name], rotation=90, ha="center", va="bottom", fontsize=7)
            for key, marker in (("p50_ms", "o"), ("p99_ms", "s")):
                spread_ = figures[key]
                if spread_["median"] is not None:
                    latency.errorbar(x, spread_["median"], yerr=[[spread_["median"] - spread_["min"]],
                                     [spread_["max"] - spread_["median"]]], fmt=marker, capsize=3,
                                     color=f"C{TARGET_ORDER.index(name)}",
                                     label=f"{NAMES[name]} {key[:3]}" if index == 0 else None)  # fmt: skip
        bare = summary[rate].get("bare")
        if bare and bare["cpu_us_per_msg"]["median"] and bare["p99_ms"]["median"] is not None:  # issue 17's targets
            span_ = (index - 0.45, index + 0.45)
            cost.plot(span_, [1.5 * bare["cpu_us_per_msg"]["median"]] * 2, "k--", linewidth=1,
                      label="target: 1.5 x the bare stack" if index == 0 else None)  # fmt: skip
            latency.plot(span_, [bare["p99_ms"]["median"] + 3] * 2, "k--", linewidth=1,
                         label="target: bare p99 + 3 ms" if index == 0 else None)  # fmt: skip
    for axes, title in ((cost, "server CPU µs per message (medians)"), (latency, "p50 (o) and p99 (s), ms")):
        axes.set_xticks(range(len(rates)), [f"{rate} msg/s" for rate in rates])
        axes.set_title(title)
        axes.grid(True, axis="y", which="both", alpha=0.3)
    handles, labels = cost.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    cost.legend(unique.values(), unique.keys(), fontsize="small")
    cost.set_ylim(top=cost.get_ylim()[1] * 1.2)  # room for the names above the bars
    latency.set_yscale("log")
    latency.legend(fontsize="x-small")
    figure.suptitle(f"make bench, {result['when']} (load before {result['load_avg_1m_before']})", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(result: dict, stamp: str) -> list[Path]:
    """`compare-<stamp>.json`, `.md` and `.png` (the steady phases' cost and latency) in bench/results."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"compare-{stamp}"
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=1))
    md_path.write_text(markdown(result))
    if not result["summary"]:
        return [json_path, md_path]
    png_path = base.with_suffix(".png")
    plot(result, png_path)
    return [json_path, md_path, png_path]


if __name__ == "__main__":  # a run's plot again from its JSON: python -m bench.compare_report results/compare-X.json
    import sys

    for name in sys.argv[1:]:
        source = Path(name)
        plot(json.loads(source.read_text()), source.with_suffix(".png"))
        print(f"written: {source.with_suffix('.png')}")
