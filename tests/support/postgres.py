"""A throwaway PostgreSQL for a test run: `python -m pytest -p tests.support.postgres` (`make test-postgres`).

The plugin starts its own cluster (`initdb`, `pg_ctl`) before pytest-django reads the settings, so `DATABASE_URL`
points at it: in a temporary directory, on a free port of 127.0.0.1 only (no Unix socket outside that directory),
with trust authentication (nothing but this machine's loopback can reach it). PostgreSQL refuses to run as root,
so as root the cluster runs as Debian's `postgres` user (made by the `postgresql` package), else `nobody`.
Durability is off (`fsync`, `synchronous_commit`): the tests kill the bridge and Daphne, never PostgreSQL.
pytest-django creates `test_pumpstream` in it (under pytest-xdist one per worker: `test_pumpstream_gw0`, ...);
Daphne and the bridge get that database's URL from `tests.support.processes.subprocess_env`. The cluster is
stopped and deleted when pytest ends.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import free_port, wait_for_port

USER = "pumpstream"  # the cluster's superuser, the role the tests and their subprocesses connect as
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",  # Daphne's threads, the bridge's, the test's own
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def postgres_bindir() -> Path:
    """Where `initdb` and `pg_ctl` are: `PG_BINDIR`, the PATH, or Debian's newest /usr/lib/postgresql/N/bin."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    if not versions:
        raise pytest.UsageError("PostgreSQL is not installed: run `CI=true scripts/setup.sh --test` (as root)")
    return versions[-1].parent


class PostgresCluster:
    """One cluster in its own directory; `start()` returns the URL of its (not yet created) `pumpstream` database."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.directory = Path(tempfile.mkdtemp(prefix="pumpstream-pg-"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self.port = free_port()
        self.runas = _unprivileged_user() if os.geteuid() == 0 else None
        if self.runas is not None:
            os.chown(self.directory, self.runas.pw_uid, self.runas.pw_gid)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.runas is not None:
            command = ["runuser", "-u", self.runas.pw_name, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.directory)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr or result.stdout}")

    def start(self) -> str:
        self._run("initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        self.resume()
        return f"postgres://{USER}@127.0.0.1:{self.port}/pumpstream"

    def halt(self) -> None:
        """Stop the server as a restart or a failover stops it (`-m fast`), keeping its data for `resume`."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server (again, after `halt`), on its port, with the test settings."""
        options = [f"-c {name}={value}" for name, value in SETTINGS.items()]
        options += [f"-p {self.port}", f"-c unix_socket_directories={self.directory}"]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60", "-o", " ".join(options),
                  "start")  # fmt: skip
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise pytest.UsageError("running as root and no `postgres` or `nobody` user to run PostgreSQL as")


_cluster: PostgresCluster | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before pytest-django loads the settings: start the cluster and point `DATABASE_URL` at it.

    Under pytest-xdist only the controller starts one; its workers inherit `DATABASE_URL` and share the cluster,
    each with a test database of its own (pytest-django names them `test_pumpstream_gw0`, `_gw1`, ...).
    """
    global _cluster
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("DATABASE_URL", "").startswith("postgres://"):
        return
    _cluster = PostgresCluster()
    os.environ["DATABASE_URL"] = _cluster.start()


def this_runs_cluster() -> PostgresCluster | None:
    """The cluster this pytest process started (None: SQLite, or an xdist worker sharing its controller's): a test
    that stops the database for a while (`halt`, `resume`) needs one of its own to stop."""
    return _cluster


@pytest.fixture(scope="session", autouse=True)
def test_database_released(django_db_setup, django_db_blocker):
    """Torn down just before pytest-django drops the test database (it depends on its set-up): whatever still holds
    a connection to it then is named on stderr and its backend ended, so that the drop does not fail ("database ...
    is being accessed by other users", a PytestWarning at the end of a PostgreSQL run, ci59/ci60) and the run says
    who held it: a thread of this process, or a Daphne or bridge not stopped."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, application_name, client_port, state, backend_start, left(query, 120) "
                "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            holders = cursor.fetchall()
            for pid, *described in holders:
                print(f"test database {connection.settings_dict['NAME']} still held at teardown by backend {pid}: "
                      f"{described}; ended", file=sys.__stderr__)  # fmt: skip
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        connection.close()


def pytest_report_header() -> str:
    return f"database: PostgreSQL at {os.environ['DATABASE_URL']} ({_cluster.bindir if _cluster else '?'})"


def pytest_unconfigure() -> None:
    if _cluster is not None:
        _cluster.stop()
