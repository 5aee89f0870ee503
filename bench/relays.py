"""The comparisons `make bench` measures PumpStream against, each with a Mosquitto of its own.

- `node`: the seed-style relay (`bench/node/relay.js`: mqtt.js -> socket.io rooms, as the original server);
- `bare`: the bare Python stack (`bench/bare_relay.py`: paho -> python-socketio rooms under Daphne).

Neither has a database or sign-in: they are what the libraries cost, the floor PumpStream's figures are
divided by. A `Relay` answers what `bench.phases.measure` asks of a `System` (broker address, URL, pids).
"""

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.system import ROOT, System

KINDS = ("node", "bare")


@dataclass
class Relay:
    """A comparison relay and its broker; `stop()` ends both."""

    kind: str
    workdir: Path
    broker: object = None
    process: subprocess.Popen | None = None
    daphne_url: str = ""

    def start(self) -> "Relay":
        """A fresh Mosquitto (the project's limits, `set_tcp_nodelay`), then the relay; waits until it listens."""
        from tests.support.broker import MosquittoBroker
        from tests.support.processes import free_port, wait_for_port

        self.broker = MosquittoBroker(self.workdir / f"mosquitto-{self.kind}-{uuid.uuid4().hex[:4]}",
                                      persistence=True).start()  # fmt: skip
        port = free_port()
        self.daphne_url = f"http://127.0.0.1:{port}"
        log = (self.workdir / f"relay-{self.kind}.log").open("ab")
        if self.kind == "node":
            command = ["node", str(ROOT / "bench" / "node" / "relay.js"), "--broker", self.broker_address,
                       "--port", str(port)]  # fmt: skip
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        else:
            command = [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                       "bench.bare_relay:app"]  # fmt: skip
            env = {**os.environ, "BENCH_BROKER": self.broker_address}
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(port, process=self.process, timeout=30)
        return self

    @property
    def broker_address(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"

    def server_pids(self) -> dict[str, int]:
        """The relay and its broker (CPU and memory reported per process)."""
        return {"broker": self.broker.process.pid, "relay": self.process.pid}

    def stop(self) -> None:
        from tests.support.processes import stop

        if self.process is not None:
            stop(self.process)
        if self.broker is not None:
            self.broker.stop()


def targets_start(workdir: Path, database: Path, only: list[str] | None = None,
                  before: Path | None = None) -> dict[str, object]:  # fmt: skip
    """The two comparisons and PumpStream (Mosquitto, Daphne, the bridge), each on its own broker (or `only`).

    `before`: also PumpStream as another checkout has it (code only: it runs on a copy of the same fixtures).
    """
    started: dict[str, object] = {}
    try:
        if before is not None:
            copy = schema_as_of(before, database_copy(database, workdir / "before.sqlite3"))
            started["before"] = System(workdir, copy, root=before.resolve())  # stopped even if it fails to start
            started["before"].start_broker().start_servers()
        for kind in KINDS:
            if only is None or kind in only:
                started[kind] = Relay(kind, workdir)
                started[kind].start()
        if only is None or "pumpstream" in only:
            started["pumpstream"] = System(workdir, database)
            started["pumpstream"].start_broker().start_servers()
    except BaseException:
        targets_stop(started)
        raise
    return started


def database_copy(database: Path, copy: Path) -> Path:
    """A copy of the fixtures' SQLite file (checkpointed first), for a second PumpStream of its own."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    shutil.copyfile(database, copy)
    return copy


def schema_as_of(checkout: Path, database: Path) -> Path:
    """The copy's schema migrated back to what `checkout` knows (its newest migration of each app that this tree
    migrated further): an older tree runs on the schema it was written for, its rows (the fixtures) kept. Each
    migration since is reversible (added fields and tables), or the run stops here, saying which."""
    for app_migrations in sorted(ROOT.glob("*/migrations")):
        theirs = sorted(path.stem for path in (checkout / app_migrations.relative_to(ROOT)).glob("[0-9]*.py"))
        ours = sorted(path.stem for path in app_migrations.glob("[0-9]*.py"))
        if theirs and theirs != ours and theirs == ours[: len(theirs)]:
            subprocess.run([sys.executable, "manage.py", "migrate", app_migrations.parent.name, theirs[-1],
                            "--verbosity", "0"], cwd=ROOT, check=True,
                           env={**os.environ, "DATABASE_URL": f"sqlite:///{database}"})  # fmt: skip
    return database


def targets_stop(targets: dict[str, object]) -> None:
    """Stop every target started."""
    for target in targets.values():
        target.stop()
