"""Benchmark results as JSON, a Markdown table and a PNG plot of latency against offered load."""

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("level", "phase", "offered msg/s", "load 1m", "expected", "received", "missing", "dup", "reord",
           "p50 ms", "p90 ms", "p99 ms", "max ms", "p99 / floor", "after bridge p50/p99 ms", "bridge CPU s",
           "bridge RSS MiB", "Daphne CPU s", "Daphne RSS MiB", "broker CPU s", "generator CPU", "send lag p99 ms",
           "watchers CPU s", "cores busy: harness / PumpStream")  # fmt: skip


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _after_bridge(phase: dict) -> str | None:
    after = phase.get("after_bridge") or {}
    return f"{after['p50_ms']} / {after['p99_ms']}" if after.get("count") else None


def phase_row(level: str, phase: dict, floor_p99: float | None) -> list:
    """One table row: what was offered, what arrived and how fast, what it cost."""
    d, r, g = phase["deliveries"], phase["resources"], phase["generator"]
    ratio = round(d["p99_ms"] / floor_p99, 1) if floor_p99 and d["p99_ms"] is not None else None
    return [level, phase["phase"], phase["offered_msgs_per_s"], "/".join(map(str, phase["load_avg_1m"])),
            d["expected"], d["received"], d["lost"], d["duplicates"], d["reorders"], d["p50_ms"], d["p90_ms"],
            d["p99_ms"], d["max_ms"], ratio if phase["phase"] == "system" else None, _after_bridge(phase),
            r.get("bridge", {}).get("cpu_s"), r.get("bridge", {}).get("peak_rss_mib"),
            r.get("daphne", {}).get("cpu_s"), r.get("daphne", {}).get("peak_rss_mib"), r["broker"]["cpu_s"],
            f"{g['cpu_share']:.0%} of a core", g["send_lag"]["p99_ms"], phase.get("watchers_cpu_s"),
            cores_busy(phase)]  # fmt: skip


def cores_busy(phase: dict) -> str | None:
    """Cores the phase kept busy: the harness (generator, watchers, broker) and PumpStream (bridge, Daphne).

    CPU seconds over the sampled window (recorded since 2026-12-02). The watchers' figure covers their whole
    process, sign-in and connecting included, so the harness's share is an upper bound. On 2 cores, what
    the harness takes is not there for the system under test.
    """
    window = phase.get("window_s")
    if not window:
        return None
    r = phase["resources"]
    harness = phase["generator"]["cpu_s"] + (phase.get("watchers_cpu_s") or 0) + r["broker"]["cpu_s"]
    system = sum(r.get(name, {}).get("cpu_s", 0) for name in ("bridge", "daphne"))
    return f"{harness / window:.2f} / {system / window:.2f}" if system else f"{harness / window:.2f} / –"


def markdown(result: dict) -> str:
    """The run's phases as a Markdown table, then memory per idle client and the targets."""
    bridge = f"batch {batching(result)}"
    lines = [f"**{result['level']}** ({result['when']}, {result['machine']}, bridge: {bridge})", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]  # fmt: skip
    floor_p99 = None
    for phase in result["phases"]:
        if phase["phase"] == "floor":
            floor_p99 = phase["deliveries"]["p99_ms"]
        lines.append("| " + " | ".join(_cell(v) for v in phase_row(result["level"], phase, floor_p99)) + " |")
    if result.get("memory"):
        memory = result["memory"]
        rss = ", ".join(f"{n} clients {mib} MiB" for n, mib in memory["daphne_rss_mib"].items())
        lines += ["", f"Daphne RSS with idle signed-in clients: {rss}: **{memory['kib_per_idle_client']} KiB per "
                      "idle client**."]  # fmt: skip
    if result.get("max_sustainable_msgs_per_s") is not None:
        lines += ["", f"Maximum sustainable ingest (no loss, p99 <= 100 ms): **{result['max_sustainable_msgs_per_s']:,}"
                      " msg/s**."]  # fmt: skip
    lines += ["", *(f"- {target}" for target in result.get("targets", []))]
    return "\n".join(lines) + "\n"


DEFAULT_WINDOW_BEFORE_2026_12_01_MS = 20.0  # runs recorded as "defaults" before the bridge's default became 0


def bridge_window_ms(result: dict) -> float:
    """The bridge's batch window a run used (recorded since 2026-12-01; older runs say "defaults" or the flag)."""
    if "bridge_window_ms" in result:
        return result["bridge_window_ms"]
    args = result.get("bridge_args", "defaults")
    return float(args.split()[-1]) if args.startswith("--batch-window-ms") else DEFAULT_WINDOW_BEFORE_2026_12_01_MS


def batching(result: dict) -> str:
    """How the run's bridge batched: a fixed window, or (since 2026-12-01) one adapting to its commit time."""
    window = bridge_window_ms(result)
    if result.get("bridge_batching") == "adaptive" and window > 0:
        return f"window adaptive <= {window:g} ms"
    return f"window {window:g} ms"


def plot(path: Path) -> None:
    """p50 and p99 against offered load over every result in `bench/results` (the median of repeated runs),
    a line per batch window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: dict[str, list[tuple[float, float]]] = {"floor p99": []}
    for file in sorted(RESULTS.glob("bench-*.json")):
        result = json.loads(file.read_text())
        window = batching(result)
        for phase in result["phases"]:
            d = phase["deliveries"]
            if d["p99_ms"] is None:
                continue
            if phase["phase"] == "system":
                points.setdefault(f"system p50, {window}", []).append((phase["offered_msgs_per_s"], d["p50_ms"]))
                points.setdefault(f"system p99, {window}", []).append((phase["offered_msgs_per_s"], d["p99_ms"]))
            else:
                points["floor p99"].append((phase["offered_msgs_per_s"], d["p99_ms"]))
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for label in sorted(points):
        if points[label]:
            by_load: dict[float, list[float]] = {}
            for load, latency in points[label]:
                by_load.setdefault(load, []).append(latency)
            xs = sorted(by_load)
            ys = [statistics.median(by_load[load]) for load in xs]  # repeated runs: their median
            style = ":" if label.startswith("floor") else "-"
            axes.plot(xs, ys, marker="s" if "p99" in label else "o", linestyle=style, label=label)
    axes.axhline(100, color="grey", linewidth=0.8, linestyle="--", label="100 ms")
    axes.set(xlabel="offered load (progress messages per second)", ylabel="end-to-end latency (ms, log)",
             yscale="log", title="PumpStream: latency from intended send time to the Socket.IO client")  # fmt: skip
    axes.legend(fontsize="small")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(result: dict, stamp: str) -> list[Path]:
    """`bench-<level>-<stamp>.json` and `.md`, and `latency-vs-load.png` over every result so far."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"bench-{result['level']}-{stamp}"
    json_path, md_path, png_path = base.with_suffix(".json"), base.with_suffix(".md"), RESULTS / "latency-vs-load.png"
    json_path.write_text(json.dumps(result, indent=1))
    md_path.write_text(markdown(result))
    plot(png_path)
    return [json_path, md_path, png_path]
