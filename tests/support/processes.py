"""Real processes for integration tests: free ports, waiting for a port, environment for subprocesses."""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"  # the steering repository's shared/ folder, beside the project (never a machine path)
VENV_BIN = Path(sys.executable).parent


# Ports for the servers a test starts: below Linux's ephemeral range (32768-60999), where the kernel picks the
# local ports of outgoing connections, so a client socket never takes a port between `free_port()` and the
# server's bind; each pytest-xdist worker draws from its own block, so two workers never hand out the same port.
PORT_BLOCK_START, PORT_BLOCK_SIZE, PORT_BLOCKS = 20000, 1000, 12
_next_port_offset = random.randrange(PORT_BLOCK_SIZE)  # where this process starts in its block
_kernel_ports_given: set[int] = set()
_successors_taken: set[int] = set()  # second ports of pairs, never handed out alone by the block's next turn


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now, never the same twice in a row in one process.

    In a pytest-xdist worker (`PYTEST_XDIST_WORKER=gwN`) it comes from the worker's own block; elsewhere (a serial
    run, the xdist controller) the kernel picks one.
    """
    global _next_port_offset
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    block = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else None
    if block is None or block >= PORT_BLOCKS:
        for _ in range(100):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _kernel_ports_given:  # the kernel may pick a port it just gave us again
                _kernel_ports_given.add(port)
                return port
        raise RuntimeError("the kernel picked only ports this process was given already")
    for _ in range(PORT_BLOCK_SIZE):
        port = PORT_BLOCK_START + block * PORT_BLOCK_SIZE + _next_port_offset
        _next_port_offset = (_next_port_offset + 1) % PORT_BLOCK_SIZE
        if port in _successors_taken:
            _successors_taken.discard(port)
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or in TIME_WAIT from an earlier server of this run
            return port
    raise RuntimeError(f"no free port in xdist worker {worker}'s block")


def free_port_pair() -> int:
    """A free port whose successor is free too (Daphne's internal listener is WEB_PORT + 1); `free_port` does not
    hand out the successor next (in a worker's block it is the very next port, which it would)."""
    for _ in range(PORT_BLOCK_SIZE):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        _successors_taken.add(port + 1)
        _kernel_ports_given.add(port + 1)
        return port
    raise RuntimeError("no free pair of ports")


def wait_for_port(port: int, *, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on `port`, or fail saying why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


def shared_database_url() -> str:
    """The URL of the database the tests run on (the test database once pytest-django made it), for subprocesses."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    credentials = quote(database["USER"], safe="") + (
        f":{quote(database['PASSWORD'], safe='')}" if database["PASSWORD"] else ""
    )
    return f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment for a server or bridge subprocess: the test database and short timeouts."""
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the test process's, beside Playwright's loop: never a server's
    env.update(
        DJANGO_SETTINGS_MODULE="pumpstream.settings",
        DJANGO_DEBUG="true",  # development, explicitly: production is what an unset DJANGO_DEBUG means
        DATABASE_URL=shared_database_url(),
        HEARTBEAT_TIMEOUT_S="3",
        CONFIRMATION_TIMEOUT_S="6",
        COMMAND_EXPIRY_S="10",
        COMMAND_ACK_TIMEOUT_S="3",
        BRIDGE_HEARTBEAT_S="0.5",
        BRIDGE_STALE_AFTER_S="3",
        RECONNECT_GRACE_S="2",
        PROGRESS_SAMPLE_INTERVAL_S="1",
        # a stopped test bridge's broker session (its subscriptions, every QoS 1 message queued for it) is let go
        # 2 minutes after, not in a week: dozens of them grew the shared test broker's store to 11 MB and its CPU
        MQTT_SESSION_EXPIRY_S="120",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def stop(process: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop a subprocess with `sig`, killing it if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
