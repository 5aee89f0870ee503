"""The system under test, started for a benchmark: a fresh SQLite database, Mosquitto, Daphne and the bridge.

The orchestrator imports Django pointed at its own database file (never the dev or test database), so the
fixtures it writes (a ward, a signed-in clinician, D registered pumps with running sessions) are what
Daphne and the bridge read.
"""

import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_USER = "bench-nurse"
WARD = "bench"
SERVER_ENV = {  # production settings; housekeeping quiet while pumps are still silent before a run
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "BRIDGE_INTERNAL_SECRET": secrets.token_urlsafe(32),
    "LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
    # a day: a pump of the 1,000 msg/s phase is silent from the run's start until that phase, over 600 s on a slow
    # day, and 600 `communication_lost` raised at its start were load the comparisons never carry
    "HEARTBEAT_TIMEOUT_S": "86400",
    "SOCKETS_PER_PRINCIPAL": "0",  # every watcher is the one bench user (one session each): no per-user cap
}


def django_configure(database: Path | None = None, *, url: str = "") -> None:
    """Point Django at a fresh file database or the empty database at `url` (and the servers' secret key),
    then migrate it."""
    sys.path.insert(0, str(ROOT))
    os.environ.update(SERVER_ENV, DJANGO_SETTINGS_MODULE="pumpstream.settings",
                      DATABASE_URL=url or f"sqlite:///{database}")  # fmt: skip
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def pumps_create(count: int) -> list[str]:
    """`count` pumps in one ward, heard just now, each with a running session (bulk fixture, not services)."""
    from django.utils import timezone

    from devices.models import Device, InfusionSession, Ward
    from devices.states import PumpState, SessionStatus

    now = timezone.now()
    ward = Ward.objects.get_or_create(code=WARD, defaults={"name": "Bench"})[0]
    devices = Device.objects.bulk_create(
        Device(device_id=f"BENCH_{index:04d}", ward=ward, last_seen_at=now, reported_status="running",
               pump_state=PumpState.RUNNING)
        for index in range(count)
    )  # fmt: skip
    InfusionSession.objects.bulk_create(
        InfusionSession(device=device, status=SessionStatus.RUNNING, flow_rate_ml_min=2.0, planned_volume_ml=500.0,
                        planned_time_min=250.0, drug="Saline", confirmed_at=now, status_changed_at=now)
        for device in devices
    )  # fmt: skip
    return [device.device_id for device in devices]


def cookies_create(count: int) -> list[str]:
    """`count` signed-in sessions of the bench clinician (a member of the bench ward), as Cookie headers."""
    from django.contrib.auth import get_user_model

    from devices.models import Ward
    from tests.support.sio import session_cookie

    user, _ = get_user_model().objects.get_or_create(username=BENCH_USER)
    Ward.objects.get(code=WARD).members.add(user)
    return [session_cookie(user) for _ in range(count)]


def _server_env(database: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **SERVER_ENV, "DATABASE_URL": f"sqlite:///{database}", **extra}


@dataclass
class System:
    """Mosquitto, and optionally Daphne and the bridge, for one phase; `stop()` ends what was started."""

    workdir: Path
    database: Path
    broker: object = None
    daphne: subprocess.Popen | None = None
    daphne_url: str = ""
    bridge: subprocess.Popen | None = None
    bridge_name: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:6]}")
    bridge_args: tuple[str, ...] = ()  # e.g. ("--batch-window-ms", "0") for a what-if run
    root: Path = ROOT  # the checkout whose code runs (another one: a before/after comparison in one run)
    env: dict[str, str] = field(default_factory=dict)  # settings over SERVER_ENV's for Daphne and the bridge

    def start_broker(self) -> "System":
        """A fresh Mosquitto with the project's limits, `set_tcp_nodelay true` and persistence on."""
        from tests.support.broker import MosquittoBroker

        self.broker = MosquittoBroker(self.workdir / f"mosquitto-{uuid.uuid4().hex[:4]}", persistence=True).start()
        return self

    @property
    def broker_address(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"

    def start_servers(self) -> "System":
        """Daphne with the real ASGI application, then `run_mqtt_bridge` forwarding into it; waits until connected."""
        from tests.support.processes import free_port, wait_for_port

        port, internal_port = free_port(), free_port()
        self.daphne_url = f"http://127.0.0.1:{port}"
        self.daphne = subprocess.Popen(
            [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
             "-e", f"tcp:port={internal_port}:interface=127.0.0.1", "pumpstream.asgi:application"], cwd=self.root,
            env=_server_env(self.database, REALTIME_INTERNAL_PORT=str(internal_port), **self.env),
            stdout=(self.workdir / "daphne.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(port, process=self.daphne, timeout=30)
        wait_for_port(internal_port, process=self.daphne, timeout=30)
        env = _server_env(self.database, **self.env, MQTT_URL=self.broker.url, MQTT_CLIENT_ID=self.bridge_name,
                          REALTIME_INTERNAL_URL=f"http://127.0.0.1:{internal_port}")  # fmt: skip
        self.bridge = subprocess.Popen(
            [sys.executable, "manage.py", "run_mqtt_bridge", "--name", self.bridge_name, *self.bridge_args],
            cwd=self.root, env=env,
            stdout=(self.workdir / "bridge.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_bridge_connected()
        return self

    def _wait_bridge_connected(self, timeout: float = 30.0) -> None:
        """Until the bridge's heartbeat row says connected (read from this system's own database file)."""
        import sqlite3

        from devices.models import BridgeStatus

        query = f"SELECT 1 FROM {BridgeStatus._meta.db_table} WHERE name = ? AND broker_connected"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bridge.poll() is not None:
                raise RuntimeError(f"the bridge exited with {self.bridge.returncode}; see {self.workdir}/bridge.log")
            database = sqlite3.connect(self.database, timeout=5)
            try:
                if database.execute(query, (self.bridge_name,)).fetchone():
                    return
            finally:
                database.close()
            time.sleep(0.1)
        raise TimeoutError(f"the bridge did not connect within {timeout}s")

    def server_pids(self) -> dict[str, int]:
        """The processes whose CPU and memory a run reports."""
        pids = {"broker": self.broker.process.pid}
        if self.bridge is not None:
            pids.update(bridge=self.bridge.pid, daphne=self.daphne.pid)
        return pids

    def stop(self) -> None:
        from tests.support.processes import stop

        for process in (self.bridge, self.daphne):
            if process is not None:
                stop(process)
        if self.broker is not None:
            self.broker.stop()


def tree_cpu_s(process) -> float:
    """User + system CPU seconds of a process and every descendant, live or already reaped (/proc, psutil).

    A reaped child's time is in its parent's `children_*`, a live one's in its own: no second counting. For
    PostgreSQL's postmaster that is every backend and background process, including connections that ended.
    """
    import psutil

    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:  # ended between the listing and the read: counted once its parent reaps it
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class ResourceSampler:
    """CPU seconds and peak RSS of some processes over a window (psutil, sampled every 0.2 s in a thread).

    The processes named in `trees` count with all their descendants (CPU only; peak RSS is the root's).
    """

    def __init__(self, pids: dict[str, int], trees: frozenset[str] = frozenset()) -> None:
        import psutil

        self.trees = trees
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.cpu_before = {name: self._cpu_of(name) for name in self.processes}
        self.peak_rss = {name: process.memory_info().rss for name, process in self.processes.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _cpu(process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def _cpu_of(self, name: str) -> float:
        process = self.processes[name]
        return tree_cpu_s(process) if name in self.trees else self._cpu(process)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for name, process in self.processes.items():
                self.peak_rss[name] = max(self.peak_rss[name], process.memory_info().rss)

    def stop(self) -> dict[str, dict[str, float]]:
        """{process: {cpu_s, peak_rss_mib}} for the window."""
        self._stop.set()
        self._thread.join()
        return {name: {"cpu_s": round(self._cpu_of(name) - self.cpu_before[name], 2),
                       "peak_rss_mib": round(self.peak_rss[name] / 2**20, 1)}
                for name, process in self.processes.items()}  # fmt: skip
