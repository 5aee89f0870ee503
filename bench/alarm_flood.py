"""Issue 15's flood figure through the whole system, repeated: `tests/integration/hostile/test_alarm_flood.py`.

    .venv/bin/python -m bench.alarm_flood --pairs 6 [--nice 0,19] [--out bench/results/alarm-flood-<time>.json]

Each run is one whole run of the test (real Mosquitto, bridge, Daphne, a Socket.IO watcher; FLOOD's 3,000 QoS 1
errors from a process of its own): CALM's alarm, ten samples without the flood and ten during it. The runs
alternate the flooding process's priority (`FLOODER_NICE`, read by `tests/support/flooder.py`): at 0 the
flooding pump's 3,000 publishes take the server's cores like any server process; at 19 they take what the server
leaves, nearer to a real pump, whose CPU is its own. Reports, per run, the no-flood p99 (the worst of ten), the
sample sent as the flood begins ("first"), the worst during the flood (five samples, each 20 ms after the last
arrived, so that most are sent before FLOOD's last PUBACK: counted as `sent_inside_flood`) and its ratio to the
no-flood p99; then
per priority the medians and how many runs were within 2x. The machine's 1-minute load is given before each run.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import ROOT

TEST = "tests/integration/hostile/test_alarm_flood.py"
LINE = re.compile(r"acknowledged after ([\d.]+) s.*without flood: p50 (\d+) ms, p99 (\d+) ms.*during the flood: "
                  r"p50 (\d+) ms, p99 (\d+) ms.*\(each: \[([^\]]*)\]; (\d+) of \d+ sent before")  # fmt: skip


def one_run(nice: int) -> dict:
    env = dict(os.environ, FLOODER_NICE=str(nice), DJANGO_DEBUG="true")
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", TEST, "-n", "0", "-p", "no:cacheprovider", "-q", "-o", "log_cli=true",
         "-o", "log_cli_level=WARNING"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    found = LINE.search(out.stdout + out.stderr)
    if out.returncode != 0 or not found:
        return {"nice": nice, "load": load, "failed": (out.stdout + out.stderr)[-3000:]}
    quiet_p99 = int(found[3])
    during = [round(float(d) * 1000) for d in found[6].split(",")]
    return {
        "nice": nice, "load": round(load, 2), "quiet_p50_ms": int(found[2]), "quiet_p99_ms": quiet_p99,
        "first_ms": during[0], "during_ms": during, "during_worst_ms": max(during),
        "ratio": round(max(during) / quiet_p99, 2), "acknowledged_after_s": float(found[1]),
        "sent_inside_flood": int(found[7]),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--nice", default="0,19", help="the flooder's priorities, alternated in each round")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    nices = [int(n) for n in args.nice.split(",")]
    runs = []
    for round_no in range(args.pairs):
        for nice in nices:
            run = one_run(nice)
            runs.append(run)
            print(round_no + 1, json.dumps(run)[:400], flush=True)
    print("\n| flooder nice | runs | no-flood p99 ms, median (range) | first ms | worst during ms | ratio | within 2x |"
          "\n|---|---|---|---|---|---|---|")  # fmt: skip
    for nice in nices:
        done = [r for r in runs if r["nice"] == nice and "ratio" in r]
        if not done:
            continue

        def med(key: str, rows: list[dict] = done) -> str:
            values = [r[key] for r in rows]
            return f"{statistics.median(values):g} ({min(values):g}-{max(values):g})"

        within = sum(r["ratio"] <= 2 for r in done)
        failed = sum(1 for r in runs if r["nice"] == nice and "ratio" not in r)
        print(f"| {nice} | {len(done)}{f' (+{failed} failed)' if failed else ''} | {med('quiet_p99_ms')} | "
              f"{med('first_ms')} | {med('during_worst_ms')} | {med('ratio')} | {within} of {len(done)} |")  # fmt: skip
    out = args.out or ROOT / "bench" / "results" / f"alarm-flood-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"test": TEST, "runs": runs}, indent=1))
    print(f"\n{out}")


if __name__ == "__main__":
    main()
