"""The ingest comparison's figures (`bench/ingest.py`): medians and ranges, bridge/bare ratios, py-spy own time.

.venv/bin/python -m bench.ingest_report --own-time /tmp/prof/bridge-1000-*.txt --top 25
"""

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from bench.compare_report import span
from bench.figures import spread

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = {"bare": "bare paho subscriber", "bridge": "bridge", "before": "bridge before (--before)"}
COST_TARGET = 2.0  # the bridge's CPU per message <= 2x the bare subscriber's
SUSTAINED_RATE, LAG_P99_TARGET_MS = 2000, 100.0


def phase_line(phase: dict) -> str:
    """One line per phase as it ends."""
    lag = phase["commit_lag"]
    return (f"{phase['rate']:>5} msg/s round {phase['round']} {phase['target']:<6} CPU/msg "
            f"{phase['cpu_us_per_msg']['subscriber']} µs  lost {phase['lost']}  commit lag p50 {lag['p50_ms']} "
            f"p99 {lag['p99_ms']} ms  load {phase['load_avg_1m']}")  # fmt: skip


def summarise(phases: list[dict]) -> dict:
    """{rate: {target: medians and ranges, "ratios": {bridge or before: its / the bare CPU per message}}}."""
    summary: dict = {}
    for rate in sorted({phase["rate"] for phase in phases}):
        at_rate = [phase for phase in phases if phase["rate"] == rate]
        by_target: dict[str, list[dict]] = {}
        for phase in at_rate:
            by_target.setdefault(phase["target"], []).append(phase)
        figures: dict = {name: _figures(by_target[name]) for name in NAMES if name in by_target}
        figures["ratios"] = {name: ratio for name in ("bridge", "before") if (ratio := _ratio(figures, at_rate, name))}
        summary[str(rate)] = figures
    return summary


def _figures(mine: list[dict]) -> dict:
    """One target's phases at one rate: medians and ranges."""
    processes = sorted({p for phase in mine for p in phase["cpu_us_per_msg"]})
    return {
        "runs": len(mine),
        "cpu_us_per_msg": {p: spread([phase["cpu_us_per_msg"].get(p) for phase in mine]) for p in processes},
        "lost": spread([phase["lost"] for phase in mine]),
        "published": sum(phase["published"] for phase in mine),
        "p50_ms": spread([phase["commit_lag"]["p50_ms"] for phase in mine]),
        "p99_ms": spread([phase["commit_lag"]["p99_ms"] for phase in mine]),
        "load_avg_1m": spread([phase["load_avg_1m"][0] for phase in mine]),
    }


def _ratio(figures: dict, at_rate: list[dict], name: str) -> dict | None:
    """`name`'s subscriber CPU per message over the bare one's: per round (paired), and of the medians."""
    if "bare" not in figures or name not in figures:
        return None
    per_round = []
    for number in sorted({phase["round"] for phase in at_rate}):
        pair = {phase["target"]: phase["cpu_us_per_msg"]["subscriber"] for phase in at_rate if phase["round"] == number}
        if pair.get("bare") and name in pair:
            per_round.append(pair[name] / pair["bare"])
    bare, bridge = (figures[target]["cpu_us_per_msg"]["subscriber"]["median"] for target in ("bare", name))
    return {"of_medians": round(bridge / bare, 2) if bare else None, "per_round": spread(per_round),
            "bridge_minus_bare_us": round(bridge - bare, 1)}  # fmt: skip


def targets_against_issue(summary: dict) -> list[str]:
    """Issue 17's ingest targets, per rate (statements only)."""
    lines = []
    for rate, figures in summary.items():
        ratio = figures["ratios"].get("bridge")
        if ratio and ratio["per_round"]["median"] is not None:
            met = ratio["per_round"]["max"] <= COST_TARGET
            lines.append(f"{rate} msg/s cost: bridge / bare subscriber CPU per message {ratio['per_round']['median']} "
                         f"(per round {ratio['per_round']['min']}–{ratio['per_round']['max']}; target <= "
                         f"{COST_TARGET:g}): {'met' if met else 'NOT met'}")  # fmt: skip
        bridge = figures.get("bridge")
        if bridge and int(rate) >= SUSTAINED_RATE:
            p99 = bridge["p99_ms"]["max"]
            ok = bridge["lost"]["max"] == 0 and p99 is not None and p99 <= LAG_P99_TARGET_MS
            lines.append(f"{rate} msg/s sustained by the bridge, 0 loss and commit lag p99 <= {LAG_P99_TARGET_MS:g} ms "
                         f"in every run (lost up to {bridge['lost']['max']}, p99 up to {p99} ms): "
                         f"{'met' if ok else 'NOT met'}")  # fmt: skip
    return lines


def markdown(result: dict) -> str:
    """Tables: per rate and target, then the ratios and the targets."""
    lines = [f"Ingest comparison, {result.get('when')}, {result['machine']}; 1-minute load before "
             f"{result['load_avg_1m_before']}; idle share of a core: {result.get('idle_core_share')}", "",
             "| msg/s | subscriber | runs | CPU µs/msg | others' CPU µs/msg | lost (of published) | commit lag p50 ms "
             "| p99 ms | load 1m |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for rate, figures in result["summary"].items():
        for name, label in NAMES.items():
            f = figures.get(name)
            if not f:
                continue
            others = ", ".join(f"{p} {span(v)}" for p, v in f["cpu_us_per_msg"].items() if p != "subscriber")
            lines.append(f"| {rate} | {label} | {f['runs']} | {span(f['cpu_us_per_msg']['subscriber'])} | {others} | "
                         f"{span(f['lost'])} ({f['published']}) | {span(f['p50_ms'])} | {span(f['p99_ms'])} | "
                         f"{span(f['load_avg_1m'])} |")  # fmt: skip
    lines += ["", "| msg/s | bridge | CPU per msg / the bare one's: per round | of medians | minus the bare µs/msg |",
              "|---|---|---|---|---|"]  # fmt: skip
    for rate, figures in result["summary"].items():
        for name, ratio in figures["ratios"].items():
            lines.append(f"| {rate} | {name} | {span(ratio['per_round'])} | {ratio['of_medians']} | "
                         f"{ratio['bridge_minus_bare_us']} |")  # fmt: skip
    return "\n".join(lines + [""] + [f"- {line}" for line in result.get("targets", [])]) + "\n"


def write(result: dict, stamp: str) -> list[Path]:
    """`ingest-<stamp>.json` and `.md` in bench/results/."""
    RESULTS.mkdir(exist_ok=True)
    paths = [RESULTS / f"ingest-{stamp}.json", RESULTS / f"ingest-{stamp}.md"]
    paths[0].write_text(json.dumps(result, indent=1))
    paths[1].write_text(markdown(result))
    return paths


_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


def own_time(lines: list[str]) -> Counter:
    """Samples per innermost frame (`function (file)`, line numbers dropped) of py-spy's raw/collapsed output."""
    counts: Counter = Counter()
    for line in lines:
        match = _LINE.match(line.strip())
        if not match:
            continue
        leaf = match["stack"].split(";")[-1]
        frame = _FRAME.match(leaf)
        counts[f"{frame['function']} ({frame['file']})" if frame else leaf] += int(match["count"])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--own-time", type=Path, nargs="+", required=True, help="py-spy raw files")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    counts: Counter = Counter()
    for path in args.own_time:
        counts += own_time(path.read_text().splitlines())
    total = sum(counts.values())
    for frame, samples in counts.most_common(args.top):
        print(f"{100 * samples / total:5.1f} %  {samples:>6}  {frame}")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
