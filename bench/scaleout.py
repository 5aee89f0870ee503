"""`make bench LEVEL=scaleout`: the same offered load through 1 and 2 Daphne and 1 and 2 bridges on PostgreSQL + Redis.

    .venv/bin/python -m bench.scaleout --rates 400,1000 --rounds 3 --duration 8      # what `make bench` runs

PostgreSQL and Redis are started once, on free ports (as the scale-out tests start them); the fixtures (a ward,
a signed-in clinician, the pumps with running sessions) are written once. Each round starts the four
configurations 1D+1B, 2D+1B, 1D+2B and 2D+2B in an order rotated every round (the machine's speed drifts over
minutes), each with a fresh Mosquitto, connects 100 signed-in Socket.IO clients x 20 pumps (2,000 subscriptions
over the highest rate's pumps, each pump watched by 2; client c on Daphne c mod N), and measures every offered
rate through them in turn: that many pumps at 1 Hz from the Node generator (connecting the clients and serving
their 2,000 snapshots takes longer than a measured window on PostgreSQL, so it is done once per start). Per
configuration: delivered, loss, p50/p99 from the intended send time, the CPU per published message of every
process (each Daphne, each bridge, PostgreSQL's whole process tree, Redis, Mosquitto, the generator, the
watchers) from /proc, and the 1-minute load average; medians and ranges over the rounds.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.cluster import Cluster, Engines
from bench.phases import Load, measure_windows, subscriptions_plan
from bench.scaleout_figures import process_model, summarise
from bench.system import cookies_create, django_configure, pumps_create

CONFIGS = ((1, 1), (2, 1), (1, 2), (2, 2))  # (Daphne, bridges)
RESULTS = Path(__file__).resolve().parent / "results"
CLIENTS, PER_CLIENT = 100, 20


def configs_rotated(round_number: int, configs: tuple[tuple[int, int], ...] = CONFIGS) -> list[tuple[int, int]]:
    """The configurations in round `round_number`'s order, so that none always runs first or last."""
    shift = round_number % len(configs)
    return list(configs[shift:] + configs[:shift])


def configs_parse(text: str) -> tuple[tuple[int, int], ...]:
    """`1D+1B,2D+2B` -> ((1, 1), (2, 2))."""
    pairs = []
    for name in text.split(","):
        daphnes, bridges = name.strip().upper().split("+")
        pairs.append((int(daphnes.removesuffix("D")), int(bridges.removesuffix("B"))))
    return tuple(pairs)


def rounds_run(engines: Engines, rates: list[int], rounds: int, duration_s: float, workdir: Path,
               configs: tuple[tuple[int, int], ...] = CONFIGS, failures: list | None = None,
               on_progress=None) -> list[dict]:  # fmt: skip
    """Every (round, configuration, rate) phase; each configuration started once per round for all the rates.

    A configuration that fails (a watcher not served within its time-out on a starved machine) goes to
    `failures` and the run goes on; `on_progress(phases, failures)` after each configuration."""
    failures = [] if failures is None else failures
    device_ids = pumps_create(max(rates))
    cookies = cookies_create(CLIENTS)
    subscriptions = subscriptions_plan(device_ids, CLIENTS, PER_CLIENT)
    phases = []
    for number in range(rounds):
        for daphnes, bridges in configs_rotated(number, configs):
            cluster = Cluster(workdir, engines, daphnes, bridges)
            try:
                cluster.start()
                runs = [(Load(pumps=rate, rate_hz=1.0, clients=CLIENTS, per_client=PER_CLIENT, duration_s=duration_s),
                         device_ids[:rate]) for rate in rates]  # fmt: skip
                for phase in measure_windows(cluster, runs, subscriptions, cookies, workdir, generator_kind="node"):
                    phase.update(config=cluster.name, round=number, started_in_s=cluster.started_in_s)
                    phases.append(phase)
                    _say(phase)
            except (RuntimeError, TimeoutError) as exc:  # a starved machine: one configuration lost, not the run
                print(f"round {number} {cluster.name} FAILED: {exc}", flush=True)
                failures.append({"config": cluster.name, "round": number, "error": str(exc)[:300],
                                 "load_avg_1m": round(os.getloadavg()[0], 2)})  # fmt: skip
            finally:
                cluster.stop()
            if on_progress is not None:
                on_progress(phases, failures)
    return phases


def _say(phase: dict) -> None:
    d = phase["deliveries"]
    cpu = ", ".join(f"{name} {value:g}" for name, value in sorted(phase["cpu_us_per_msg"].items()))
    print(f"{phase['offered_msgs_per_s']:>6.0f} msg/s  round {phase['round']}  {phase['config']}  "
          f"received {d['received']}/{d['expected']}  p50 {d['p50_ms']} p99 {d['p99_ms']} ms  µs/msg: {cpu}  "
          f"load {phase['load_avg_1m']}  (started in {phase['started_in_s']} s, {time.strftime('%H:%M:%S')})",
          flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=lambda text: [int(n) for n in text.split(",") if n], default=[400, 1000],
                        help="offered msg/s (that many pumps at 1 Hz)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the four configurations")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per phase")
    parser.add_argument("--configs", type=configs_parse, default=CONFIGS, help="e.g. 1D+1B,2D+2B (default: all four)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    engines = Engines(workdir).start()
    result: dict = {"level": "scaleout", "load_avg_1m_before": round(os.getloadavg()[0], 2),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                    "workdir": str(workdir), "clients": CLIENTS, "per_client": PER_CLIENT}  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    result["failures"] = []
    try:
        django_configure(url=engines.database_url)
        progress = lambda phases, _: results_write(result, phases, stamp)  # noqa: E731
        result["phases"] = rounds_run(engines, args.rates, args.rounds, args.duration, workdir, args.configs,
                                      result["failures"], progress)  # fmt: skip
    finally:
        engines.stop()
    print(results_write(result, result["phases"], stamp))


def results_write(result: dict, phases: list[dict], stamp: str) -> str:
    """`bench-scaleout-<stamp>.json` and `.md` with the phases so far (rewritten after each configuration)."""
    from bench import scaleout_report

    result.update(phases=phases, when=datetime.now(UTC).isoformat(timespec="seconds"), summary=summarise(phases))
    result["model"] = process_model(result["summary"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"bench-scaleout-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(result, indent=1))
    text = scaleout_report.markdown(result)
    base.with_suffix(".md").write_text(text)
    return text + f"\nwritten: {base}.json, {base}.md"


if __name__ == "__main__":
    main()
