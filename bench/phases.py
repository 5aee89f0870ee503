"""One measured phase: watchers connected and subscribed, the generator run on schedule, figures collected."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.stats import deliveries_merge
from bench.system import ROOT, ResourceSampler, System

START_DELAY_S = 1.0


@dataclass(frozen=True)
class Load:
    """D pumps at R Hz each, C watchers each watching K pumps, W seconds of warm-up, T measured."""

    pumps: int
    rate_hz: float
    clients: int
    per_client: int
    duration_s: float
    warmup_s: float = 3.0
    drain_s: float = 2.0  # how long after the window a late message still counts as delivered

    @property
    def offered_msgs_per_s(self) -> float:
        return round(self.pumps * self.rate_hz, 1)


def subscriptions_plan(device_ids: list[str], clients: int, per_client: int) -> list[list[str]]:
    """Client c watches K consecutive pumps starting at c*K (wrapping), so every pump is watched evenly."""
    count = len(device_ids)
    return [[device_ids[(c * per_client + j) % count] for j in range(per_client)] for c in range(clients)]


def python_module(module: str, *args: str, **popen) -> subprocess.Popen:
    """`python -m module args` from the project root."""
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, **popen)


def wait_line(process: subprocess.Popen, prefix: str, timeout: float = 180.0) -> str:
    """Block until the child prints a line starting with `prefix` (fail if it exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if line.startswith(prefix):
            return line.strip()
        if not line and process.poll() is not None:
            raise RuntimeError(f"{process.args[2]} exited with {process.returncode} before saying {prefix!r}")
    raise TimeoutError(f"no {prefix!r} within {timeout}s")


def py_spy(pid: int, output: Path) -> subprocess.Popen:
    """py-spy sampling `pid` (all threads, idle excluded) into collapsed stacks (flamegraph.pl input) until SIGINT."""
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", "100",
               "--format", "raw", "--output", str(output), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


NODE_PACKAGES = ("mqtt", "socket.io", "socket.io-client")  # what `bench/node/*.js` require


def node_packages_ready() -> None:
    """Stop at once when this checkout lacks the Node packages the run's generator, relay or storm watchers need
    (a second worktree without `node_modules`: the first steady phase failed only after the idle phase's minutes)."""
    missing = [name for name in NODE_PACKAGES if not (ROOT / "node_modules" / name).is_dir()]
    if missing:
        raise SystemExit(f"{ROOT / 'node_modules'} lacks {', '.join(missing)}: run `make setup-test` in this checkout "
                         "(or link its node_modules to another's)")  # fmt: skip


def generator_start(kind: str, broker: str, pumps: Path, schedule: list[str], out: Path) -> subprocess.Popen:
    """The load generator: `node` (mqtt.js, `bench/node/loadgen.js`, cheap) or `python` (`bench/loadgen.py`)."""
    if kind == "node":
        return subprocess.Popen(["node", str(ROOT / "bench" / "node" / "loadgen.js"), "--broker", broker,
                                 "--pumps", str(pumps), *schedule, "--out", str(out)], cwd=ROOT)  # fmt: skip
    return python_module("bench.loadgen", "--broker", broker, "--pumps", str(pumps), *schedule, "--out", str(out))


def cpu_per_message(resources: dict, published: int) -> dict[str, float]:
    """Each process's CPU over the phase divided by the messages the generator published (µs per message)."""
    return {name: round(usage["cpu_s"] * 1e6 / max(published, 1), 1) for name, usage in resources.items()}


def watchers_split(subscriptions: list[list[str]], cookies: list[str], urls: list[str]) -> list[dict]:
    """Client c connects to `urls[c % len(urls)]`: the watchers spread evenly over the Daphne processes."""
    return [{"url": url, "subscriptions": subscriptions[number :: len(urls)],
             "cookies": cookies[: len(subscriptions)][number :: len(urls)]}
            for number, url in enumerate(urls)]  # fmt: skip


def watchers_start(system, subscriptions: list[list[str]], cookies: list[str], workdir: Path, tag: str,
                   *, floor: bool, drain_s: float) -> list[tuple[subprocess.Popen, Path]]:  # fmt: skip
    """The watcher processes (one per Daphne the system has, or one on the broker for the floor), all ready."""
    if floor:
        parts = [{"target": ["--mode", "mqtt", "--broker", system.broker_address], "subscriptions": subscriptions,
                  "cookies": cookies}]  # fmt: skip
    else:
        urls = getattr(system, "daphne_urls", None) or [system.daphne_url]
        parts = [{**part, "target": ["--mode", "sio", "--url", part["url"]]}
                 for part in watchers_split(subscriptions, cookies, urls)]  # fmt: skip
    started = []
    for number, part in enumerate(parts):
        plan, out = workdir / f"plan-{tag}-{number}.json", workdir / f"watchers-{tag}-{number}-last.json"
        plan.write_text(json.dumps({"subscriptions": part["subscriptions"], "cookies": part["cookies"]}))
        started.append(
            (
                python_module(
                    "bench.watchers",
                    *part["target"],
                    "--plan",
                    str(plan),
                    "--out",
                    str(out),
                    "--drain",
                    str(drain_s),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                ),
                out,
            )
        )
    for watchers, _ in started:
        wait_line(watchers, "ready")
    return started


def measure(system: System, load: Load, device_ids: list[str], cookies: list[str], workdir: Path, *,
            floor: bool, profile_dir: Path | None = None, generator_kind: str = "python") -> dict:  # fmt: skip
    """Run one phase: through the whole system, or (floor) with MQTT watchers straight on the broker.

    A system with several Daphne (`daphne_urls`) gets one watcher process per Daphne, the clients split evenly;
    its `tree_pids()` (e.g. PostgreSQL's postmaster) count with every descendant process.
    """
    tag = f"{'floor' if floor else 'system'}-{int(load.offered_msgs_per_s)}-{time.time_ns()}"
    subscriptions = subscriptions_plan(device_ids, load.clients, load.per_client)
    watchers = watchers_start(system, subscriptions, cookies, workdir, tag, floor=floor, drain_s=load.drain_s)
    try:
        return window_measure(system, load, device_ids, subscriptions, watchers, workdir, floor=floor,
                              profile_dir=profile_dir, generator_kind=generator_kind)  # fmt: skip
    finally:
        watchers_end(watchers)


def measure_windows(system, runs: list[tuple[Load, list[str]]], subscriptions: list[list[str]], cookies: list[str],
                    workdir: Path, *, generator_kind: str = "node") -> list[dict]:  # fmt: skip
    """Several phases through one set of connected watchers: each (load, its publishing pumps) in turn."""
    tag = f"windows-{time.time_ns()}"
    watchers = watchers_start(system, subscriptions, cookies, workdir, tag, floor=False, drain_s=runs[0][0].drain_s)
    try:
        return [window_measure(system, load, device_ids, subscriptions, watchers, workdir, floor=False,
                               generator_kind=generator_kind) for load, device_ids in runs]  # fmt: skip
    finally:
        watchers_end(watchers)


def watchers_end(watchers: list[tuple[subprocess.Popen, Path]]) -> None:
    """End of input: the watcher processes disconnect and exit (killed if they linger)."""
    for process, _ in watchers:
        if process.stdin and not process.stdin.closed:
            process.stdin.close()
    for process, _ in watchers:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def window_measure(system, load: Load, device_ids: list[str], subscriptions: list[list[str]],
                   watchers: list[tuple[subprocess.Popen, Path]], workdir: Path, *, floor: bool,
                   profile_dir: Path | None = None, generator_kind: str = "python") -> dict:  # fmt: skip
    """One measured window: the generator publishes for `device_ids` on schedule to the connected watchers."""
    tag = f"{'floor' if floor else 'system'}-{int(load.offered_msgs_per_s)}-{time.time_ns()}"
    pumps = workdir / f"pumps-{tag}.json"
    pumps.write_text(json.dumps(device_ids))
    gen_out = workdir / f"generator-{tag}.json"
    outs = [workdir / f"watchers-{tag}-{number}.json" for number in range(len(watchers))]
    start_at = time.time() + START_DELAY_S
    measured_from = start_at + load.warmup_s
    for (process, _), out in zip(watchers, outs, strict=True):
        process.stdin.write((json.dumps([measured_from, measured_from + load.duration_s, str(out)]) + "\n").encode())
        process.stdin.flush()
    load_before = os.getloadavg()[0]
    trees = system.tree_pids() if hasattr(system, "tree_pids") else {}
    applied_before = system.applied_count() if hasattr(system, "applied_count") else None
    sampler = ResourceSampler({**system.server_pids(), **trees}, trees=frozenset(trees))
    window_started = time.monotonic()
    schedule = ["--rate", str(load.rate_hz), "--start-at", str(start_at), "--warmup", str(load.warmup_s),
                "--duration", str(load.duration_s)]  # fmt: skip
    profilers = [py_spy(pid, profile_dir / f"{name}-{tag}.txt") for name, pid in system.server_pids().items()
                 if name != "broker"] if profile_dir and not floor else []  # fmt: skip
    generator = generator_start(generator_kind, system.broker_address, pumps, schedule, gen_out)
    if generator.wait() != 0:
        raise RuntimeError(f"the generator exited {generator.returncode}")
    for process, _ in watchers:
        wait_line(process, "done", timeout=load.duration_s + load.drain_s + 120)
    resources, window_s = sampler.stop(), time.monotonic() - window_started
    applied = system.applied_count() - applied_before if applied_before is not None else None
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)
    sent, seen = json.loads(gen_out.read_text()), [json.loads(out.read_text()) for out in outs]
    due = sent.pop("due_per_pump")
    expected = sum(due.get(device_id, 0) for watched in subscriptions for device_id in watched)
    return {"phase": "floor" if floor else "system", **asdict(load), "offered_msgs_per_s": load.offered_msgs_per_s,
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "deliveries": deliveries_merge(seen, expected=expected), "after_bridge": seen[0]["after_bridge"],
            "after_bridge_by_watchers": [part["after_bridge"] for part in seen],
            "arrived_by_watchers": [part.get("arrived") for part in seen], "applied": applied,
            "generator": sent, "cpu_us_per_msg": cpu_per_message(resources, sent["published"]),
            "watchers_cpu_s": round(sum(part["cpu_s"] for part in seen), 2), "resources": resources,
            "window_s": round(window_s, 1)}  # fmt: skip


def idle_memory(system: System, cookies: list[str], steps: list[int], workdir: Path, settle_s: float = 3.0) -> dict:
    """Daphne's RSS with 0, then each step's number of idle signed-in Socket.IO clients connected."""
    import psutil

    plan = workdir / "plan-idle.json"
    plan.write_text(json.dumps({"subscriptions": [], "cookies": cookies}))
    clients = python_module("bench.watchers", "--mode", "idle", "--url", system.daphne_url, "--plan", str(plan),
                            "--steps", ",".join(map(str, steps)), "--out", str(workdir / "idle.json"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    daphne = psutil.Process(system.daphne.pid)
    rss: dict[int, float] = {}
    for _ in steps:
        connected = int(wait_line(clients, "ready").split()[1])
        time.sleep(settle_s)
        rss[connected] = daphne.memory_info().rss
        clients.stdin.write(b"\n")
        clients.stdin.flush()
    clients.wait(timeout=120)
    base, most = min(rss), max(rss)
    per_client = (rss[most] - rss[base]) / max(most - base, 1) / 1024
    return {"daphne_rss_mib": {str(n): round(value / 2**20, 1) for n, value in rss.items()},
            "kib_per_idle_client": round(per_client, 1)}  # fmt: skip
