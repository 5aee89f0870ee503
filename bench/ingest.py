"""The bridge against a bare paho subscriber that stores the same messages (issue 17's cost target), in one run.

    make bench LEVEL=ingest                                             # 400, 1,000, 2,000 msg/s, 3 rounds
    .venv/bin/python -m bench.ingest --rates 1000 --rounds 1 --py-spy /tmp/prof   # py-spy of both subscribers, Daphne

Two targets, each with a Mosquitto of its own (the project's limits, `set_tcp_nodelay`, persistence on), fed
in turn by the same Node generator (`bench/node/loadgen.js`: R pumps at 1 Hz each, evenly phased, QoS 1
progress with `seq`, `bootId` and `intendedAt`):

- `bare`: `bench/bare_ingest.py`, receive, decode, store in one SQLite transaction per batch, acknowledge;
- `bridge`: the real `manage.py run_mqtt_bridge` with production settings on a fresh SQLite file with the
  R pumps registered, each with a running session, and the Daphne it wakes (`bench/system.py`).

Per phase: each subscriber process's CPU (user + system from /proc) from the generator's start until every
published message is committed (a backlog included: at most `--drain` s after the generator, or until nothing
commits for 30 s), divided by the messages published; loss (published minus distinct messages committed by
then); and the **commit lag**: from the message's due time in the schedule
(`intendedAt`, so a lagging generator adds its lag instead of hiding it) to when its row became visible to a
reader polling the subscriber's database every 10 ms (the bare one's `progress` rows, the bridge's
`MessageReceipt`s: the same method for both, up to 10 ms coarser than the commit itself), for messages due
in the measured window after the warm-up. Targets alternate in an order rotated every round and rate.
"""

import argparse
import json
import math
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench import ingest_report
from bench.phases import generator_start, node_packages_ready, py_spy
from bench.relays import database_copy, schema_as_of
from bench.stats import latency_summary
from bench.system import ROOT, ResourceSampler, System, django_configure, pumps_create

POLL_S = 0.01
TARGETS = ("bare", "bridge", "before")  # "before": the bridge as another checkout has it (--before)


def intended_at(*, start_at: float, rate_hz: float, index: int, count: int, seq: int) -> float:
    """When the Node generator meant to send pump `index` of `count`'s message `seq` (its schedule and seq base)."""
    first_seq = math.floor(start_at * 10)
    return start_at + (seq - first_seq + index / count) / rate_hz


class CommitWatcher:
    """Polls a subscriber's database every 10 ms: when each (pump, seq) row first became visible."""

    def __init__(self, database: Path, query: str) -> None:
        self.connection = sqlite3.connect(database, timeout=5, check_same_thread=False)
        self.query = query
        self.last_id = self.connection.execute(f"SELECT COALESCE(MAX(id), 0) FROM ({query})", (0,)).fetchone()[0]
        self.seen: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> "CommitWatcher":
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            rows = self.connection.execute(self.query, (self.last_id,)).fetchall()
            now = time.time()
            for row_id, device_id, seq in rows:
                self.seen.setdefault((device_id, seq), now)
                self.last_id = max(self.last_id, row_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.connection.close()


class BareTarget:
    """`bench/bare_ingest.py` on a Mosquitto of its own, storing into its own SQLite file."""

    name = "bare"
    query = "SELECT id, device_id, seq FROM progress WHERE id > ? AND kind = 'progress'"

    def __init__(self, workdir: Path) -> None:
        from tests.support.broker import MosquittoBroker

        self.database = workdir / "bare.sqlite3"
        self.broker = MosquittoBroker(workdir / f"mosquitto-bare-{uuid.uuid4().hex[:4]}", persistence=True).start()
        command = [sys.executable, "-m", "bench.bare_ingest", "--broker", self.broker_address, "--database",
                   str(self.database)]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE)
        if self.process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the bare subscriber exited with {self.process.wait()}")

    @property
    def broker_address(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"

    def pids(self) -> dict[str, int]:
        return {"subscriber": self.process.pid, "broker": self.broker.process.pid}

    def stop(self) -> None:
        from tests.support.processes import stop

        stop(self.process)
        self.broker.stop()


class BridgeTarget:
    """The real bridge (and the Daphne it wakes) on a Mosquitto of its own, production settings (`System`)."""

    def __init__(self, workdir: Path, database: Path, *, name: str = "bridge", root: Path = ROOT) -> None:
        from devices.models import Device, MessageReceipt

        receipts, devices = MessageReceipt._meta.db_table, Device._meta.db_table
        self.query = (f"SELECT r.id, d.device_id, r.device_seq FROM {receipts} r JOIN {devices} d "
                      f"ON d.id = r.device_id WHERE r.id > ?")  # fmt: skip
        self.name = name
        self.database = database
        # pumps of the top rate wait through the lower rates' phases and backlogs: no communication_lost meanwhile
        self.system = System(workdir, database, root=root, env={"HEARTBEAT_TIMEOUT_S": "86400"})
        try:
            self.system.start_broker().start_servers()
        except BaseException:
            self.system.stop()
            raise

    @property
    def broker_address(self) -> str:
        return self.system.broker_address

    def pids(self) -> dict[str, int]:
        pids = self.system.server_pids()
        return {"subscriber": pids["bridge"], "daphne": pids["daphne"], "broker": pids["broker"]}

    def stop(self) -> None:
        self.system.stop()


def measure(target, rate: int, device_ids: list[str], workdir: Path, args: argparse.Namespace) -> dict:
    """One phase: `rate` pumps at 1 Hz into `target`; CPU per message, loss and commit lag."""
    tag = f"{target.name}-{rate}-{time.time_ns()}"
    pumps = device_ids[:rate]
    pumps_file, out = workdir / f"pumps-{tag}.json", workdir / f"generator-{tag}.json"
    pumps_file.write_text(json.dumps(pumps))
    watcher = CommitWatcher(target.database, target.query).start()
    load_before = os.getloadavg()[0]
    start_at = time.time() + 1.0
    sampler, window_started = ResourceSampler(target.pids()), time.monotonic()
    # py-spy of the subscriber, and of Daphne where the target has one (the bridge's wakes cost it per commit)
    profiled = {name: pid for name, pid in target.pids().items() if name in ("subscriber", "daphne")}
    profilers = [py_spy(pid, args.py_spy / (f"{tag}.txt" if name == "subscriber" else f"{tag}-{name}.txt"))
                 for name, pid in profiled.items() if args.py_spy]  # fmt: skip
    schedule = ["--rate", "1", "--start-at", str(start_at), "--warmup", str(args.warmup), "--duration",
                str(args.duration)]  # fmt: skip
    generator = generator_start("node", target.broker_address, pumps_file, schedule, out)
    if generator.wait() != 0:
        raise RuntimeError(f"the generator exited with {generator.returncode}")
    sent = json.loads(out.read_text())
    drained_s = drain(watcher, sent["published"], limit_s=args.drain)
    time.sleep(2 * POLL_S)
    resources, window_s = sampler.stop(), time.monotonic() - window_started
    watcher.stop()
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)
    measured_from, end_at = start_at + args.warmup, start_at + args.warmup + args.duration
    index = {device_id: n for n, device_id in enumerate(pumps)}
    lags, strays = [], 0
    for (device_id, seq), seen_at in watcher.seen.items():
        if device_id not in index:  # an earlier phase's backlog committed late (counted apart, never here)
            strays += 1
            continue
        due = intended_at(start_at=start_at, rate_hz=1.0, index=index[device_id], count=len(pumps), seq=seq)
        if measured_from <= due < end_at:
            lags.append((seen_at - due) * 1000)
    published, committed = sent["published"], len(watcher.seen) - strays
    return {
        "target": target.name, "rate": rate, "published": published, "committed": committed, "strays": strays,
        "lost": max(published - committed, 0), "unacked_by_broker": sent["unacked"],
        "commit_lag": latency_summary(lags),
        "cpu_us_per_msg": {name: round(usage["cpu_s"] * 1e6 / max(published, 1), 1)
                           for name, usage in resources.items()},
        "resources": resources, "window_s": round(window_s, 2), "drained_s": round(drained_s, 2),
        "generator": {"cpu_share": sent["cpu_share"], "send_lag_p99_ms": sent["send_lag"]["p99_ms"]},
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip


def drain(watcher: CommitWatcher, published: int, *, limit_s: float, stuck_s: float = 30.0) -> float:
    """Wait until every published message is committed (a backlog included, so that its CPU is counted and it
    never overlaps the next phase), for at most `limit_s`, or until nothing more commits for `stuck_s`."""
    started = last_change = time.monotonic()
    count = len(watcher.seen)
    while count < published and time.monotonic() - started < limit_s and time.monotonic() - last_change < stuck_s:
        time.sleep(0.05)
        if len(watcher.seen) != count:
            count, last_change = len(watcher.seen), time.monotonic()
    return time.monotonic() - started


def idle_cpu(target, seconds: float) -> dict:
    """Each process's CPU with no traffic, as a share of one core over `seconds`."""
    sampler = ResourceSampler(target.pids())
    time.sleep(seconds)
    return {name: round(usage["cpu_s"] / seconds, 4) for name, usage in sampler.stop().items()}


def order(round_number: int, rate_index: int, present) -> list[str]:
    """The targets present, rotated every round and rate, so none always goes first or last."""
    names = [name for name in TARGETS if name in present]
    shift = (round_number + rate_index) % max(len(names), 1)
    return names[shift:] + names[:shift]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=lambda text: [int(n) for n in text.split(",")], default=[400, 1000, 2000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase")
    parser.add_argument("--drain", type=float, default=180.0, help="at most this long after the generator for commits")
    parser.add_argument("--idle", type=float, default=10.0, help="first, each target's idle CPU over this long")
    parser.add_argument("--py-spy", type=Path, help="py-spy raw stacks of each subscriber into this directory")
    parser.add_argument("--only", help="run only these targets (comma-separated: bare,bridge)")
    parser.add_argument("--before", type=Path, help="also the bridge from this checkout (before/after in one run)")
    args = parser.parse_args()
    node_packages_ready()
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    django_configure(workdir / "bridge.sqlite3")
    device_ids = pumps_create(max(args.rates))
    result: dict = {"level": "ingest", "load_avg_1m_before": round(os.getloadavg()[0], 2), "workdir": str(workdir),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                    "args": {k: str(v) for k, v in vars(args).items()}, "phases": []}  # fmt: skip
    wanted = args.only.split(",") if args.only else TARGETS
    targets: dict = {}
    try:
        if "bare" in wanted:
            targets["bare"] = BareTarget(workdir)
        if args.before is not None:
            # on the schema that checkout knows (a copy of this tree's fixtures migrated back), as bench.compare does
            copy = schema_as_of(
                args.before.resolve(), database_copy(workdir / "bridge.sqlite3", workdir / "before.sqlite3")
            )
            targets["before"] = BridgeTarget(workdir, copy, name="before", root=args.before.resolve())
        if "bridge" in wanted:
            targets["bridge"] = BridgeTarget(workdir, workdir / "bridge.sqlite3")
        result["idle_core_share"] = {name: idle_cpu(target, args.idle) for name, target in targets.items()}
        for number in range(args.rounds):
            for rate_index, rate in enumerate(args.rates):
                for name in order(number, rate_index, targets):
                    phase = measure(targets[name], rate, device_ids, workdir, args)
                    phase["round"] = number
                    result["phases"].append(phase)
                    print(ingest_report.phase_line(phase), flush=True)
    finally:
        for target in targets.values():
            target.stop()
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["summary"] = ingest_report.summarise(result["phases"])
    result["targets"] = ingest_report.targets_against_issue(result["summary"])
    paths = ingest_report.write(result, datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    print(ingest_report.markdown(result) + "\nwritten: " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
