"""The scale-out layout for a benchmark: PostgreSQL and Redis for the whole run; per configuration a fresh
Mosquitto, N Daphne processes on that Redis and K bridges sharing the pumps by slots (`realtime/bridge/slots.py`).

`Engines` starts the throwaway PostgreSQL cluster (`tests/support/postgres.py`) and Redis with production's
config and a password (`tests/support/redis.py`) on free ports, as the scale-out tests do. `Cluster` answers
what `bench.phases.measure` asks of a system: the broker's address, every Daphne's URL (the watchers are split
between them), the server processes' pids, and PostgreSQL's postmaster as a process tree (its backends).
"""

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.system import ROOT, SERVER_ENV

BRIDGE_LEASE_S = "3"


@dataclass
class Engines:
    """PostgreSQL (its empty `pumpstream` database) and Redis, both on loopback free ports; `stop()` ends both."""

    workdir: Path
    postgres: object = None
    redis: object = None
    database_url: str = ""

    def start(self) -> "Engines":
        import psycopg

        from tests.support.postgres import PostgresCluster
        from tests.support.redis import RedisServer

        self.postgres = PostgresCluster()
        self.database_url = self.postgres.start()
        admin_url = self.database_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute("CREATE DATABASE pumpstream")
        self.redis = RedisServer(self.workdir / "redis").start()
        return self

    @property
    def postmaster_pid(self) -> int:
        """The first line of the cluster's `postmaster.pid`."""
        return int((self.postgres.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


@dataclass
class Cluster:
    """One configuration: a fresh Mosquitto, `daphnes` Daphne and `bridges` bridges on the engines."""

    workdir: Path
    engines: Engines
    daphnes: int
    bridges: int
    broker: object = None
    daphne_processes: list = field(default_factory=list)
    daphne_urls: list = field(default_factory=list)
    bridge_processes: list = field(default_factory=list)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    started_in_s: float | None = None

    @property
    def name(self) -> str:
        return f"{self.daphnes}D+{self.bridges}B"

    @property
    def broker_address(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"

    @property
    def daphne_url(self) -> str:
        return self.daphne_urls[0]

    def _env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, **SERVER_ENV, DATABASE_URL=self.engines.database_url,
                    REDIS_URL=self.engines.redis.url, **extra)  # fmt: skip

    def _log(self, name: str):
        return (self.workdir / f"{name}-{self.tag}.log").open("ab")

    def start(self) -> "Cluster":
        """Mosquitto, then the Daphne processes and the bridges together (bridge i wakes Daphne i mod N; its wake
        connects when that Daphne listens); waits until every Daphne listens, every bridge is connected and, with
        several, each holds its home slot. Stops what started if one fails."""
        from tests.support.broker import MosquittoBroker
        from tests.support.processes import wait_for_port

        started = time.monotonic()
        try:
            self.broker = MosquittoBroker(self.workdir / f"mosquitto-{self.tag}", persistence=True).start()
            ports = [self._daphne_start(number) for number in range(self.daphnes)]
            internal = [f"http://127.0.0.1:{internal_port}" for _, internal_port in ports]
            client_id = f"bench-{self.tag}"
            for number in range(self.bridges):
                slots = {"BRIDGE_SLOTS": str(self.bridges), "BRIDGE_PROCESSES": str(self.bridges),
                         "BRIDGE_LEASE_S": BRIDGE_LEASE_S} if self.bridges > 1 else {}  # fmt: skip
                env = self._env(MQTT_URL=self.broker.url, MQTT_CLIENT_ID=client_id,
                                REALTIME_INTERNAL_URL=internal[number % self.daphnes], **slots)  # fmt: skip
                command = [sys.executable, "manage.py", "run_mqtt_bridge", "--name", self._bridge_name(number),
                           "--index", str(number)]  # fmt: skip
                self.bridge_processes.append(subprocess.Popen(command, cwd=ROOT, env=env,
                                                              stdout=self._log(f"bridge-{number + 1}"),
                                                              stderr=subprocess.STDOUT))  # fmt: skip
            for process, (port, internal_port) in zip(self.daphne_processes, ports, strict=True):
                wait_for_port(port, process=process, timeout=60)
                wait_for_port(internal_port, process=process, timeout=60)
            self._wait_bridges()
            self.started_in_s = round(time.monotonic() - started, 1)
        except BaseException:
            self.stop()
            raise
        return self

    def _bridge_name(self, number: int) -> str:
        return f"bench-{self.tag}-{number}"

    def _daphne_start(self, number: int) -> tuple[int, int]:
        """Start Daphne `number` (not waited for); its public and internal ports."""
        from tests.support.processes import free_port

        port, internal_port = free_port(), free_port()
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
             "-e", f"tcp:port={internal_port}:interface=127.0.0.1", "pumpstream.asgi:application"], cwd=ROOT,
            env=self._env(REALTIME_INTERNAL_PORT=str(internal_port)), stdout=self._log(f"daphne-{number + 1}"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.daphne_processes.append(process)
        self.daphne_urls.append(f"http://127.0.0.1:{port}")
        return port, internal_port

    def _wait_bridges(self, timeout: float = 90.0) -> None:
        """Every bridge's heartbeat says connected; with slots, each slot is leased to its home bridge."""
        from django.db import close_old_connections

        from devices.models import BridgeLease, BridgeStatus

        names = [self._bridge_name(number) for number in range(self.bridges)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.bridge_processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a bridge exited with {process.returncode}; see {self.workdir}")
            close_old_connections()
            connected = set(BridgeStatus.objects.filter(name__in=names, broker_connected=True)
                            .values_list("name", flat=True))  # fmt: skip
            owners = dict(BridgeLease.objects.filter(name__startswith="slot-").values_list("name", "owner"))
            homes = all(owners.get(f"slot-{n}", "").startswith(f"{names[n]}@") for n in range(self.bridges))
            if connected == set(names) and (self.bridges == 1 or homes):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: the bridges were not connected within {timeout}s; see {self.workdir}")

    def server_pids(self) -> dict[str, int]:
        """Each Daphne, each bridge, Mosquitto and Redis (PostgreSQL is a tree: `tree_pids`)."""
        pids = {f"daphne-{n + 1}": process.pid for n, process in enumerate(self.daphne_processes)}
        pids.update({f"bridge-{n + 1}": process.pid for n, process in enumerate(self.bridge_processes)})
        return {**pids, "broker": self.broker.process.pid, "redis": self.engines.redis.process.pid}

    def applied_count(self) -> int:
        """Messages applied so far: one receipt per message with `seq` (the generator's all carry one)."""
        from django.db import close_old_connections

        from devices.models import MessageReceipt

        close_old_connections()
        return MessageReceipt.objects.count()

    def tree_pids(self) -> dict[str, int]:
        """PostgreSQL: the postmaster with every backend and background process, ended ones included."""
        return {"postgres": self.engines.postmaster_pid}

    def stop(self) -> None:
        """The bridges first (they release their leases), then the Daphne processes and Mosquitto."""
        from tests.support.processes import stop

        for process in [*self.bridge_processes, *self.daphne_processes]:
            stop(process)
        if self.broker is not None:
            self.broker.stop()
