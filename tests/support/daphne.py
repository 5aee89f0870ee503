"""Daphne serving the real ASGI application on a free port, against the file-backed test database.

Like production it listens twice: the public port, and the internal road's loopback port (the bridge's).
"""

import re
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.support.processes import ROOT, VENV_BIN, free_port, stop, subprocess_env, wait_for_port


class DaphneServer:
    """One Daphne process; logs go to a file kept beside the test's other artifacts."""

    def __init__(self, log_dir: Path, **env_overrides: str) -> None:
        self.port = free_port()
        self.internal_port = free_port()
        self.log_path = log_dir / f"daphne-{self.port}.log"
        self.env_overrides = env_overrides
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The public listener: pages, `/socket.io/` and `/ws/`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def internal_url(self) -> str:
        """The internal listener, where only the bridge's road is served (give it to `BridgeProcess`)."""
        return f"http://127.0.0.1:{self.internal_port}"

    def start(self) -> "DaphneServer":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
             "-e", f"tcp:port={self.internal_port}:interface=127.0.0.1", "pumpstream.asgi:application"],
            cwd=ROOT, env=subprocess_env(REALTIME_INTERNAL_PORT=str(self.internal_port), **self.env_overrides),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(self.port, process=self.process, timeout=30)
            wait_for_port(self.internal_port, process=self.process, timeout=30)
        except BaseException:
            stop(self.process, sig=signal.SIGKILL)  # never leave a Daphne behind that nobody stops
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def publisher_wakes(url: str, cookie: str) -> dict[str, float]:
    """A Daphne's `pumpstream_realtime_publisher_changes_total` by what woke its publisher (`cookie`: staff's)."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Cookie": cookie})
    text = urllib.request.urlopen(request, timeout=5).read().decode()
    found = re.findall(r'pumpstream_realtime_publisher_changes_total\{woken_by="(\w+)"\} ([0-9.e+]+)', text)
    return {by: float(value) for by, value in found}


def publisher_metrics(url: str, cookie: str) -> list[str]:
    """A Daphne's metrics lines of its publisher and clients (`cookie`: staff's), for a test's failure message."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Cookie": cookie})
    text = urllib.request.urlopen(request, timeout=5).read().decode()
    wanted = (
        "pumpstream_realtime_publisher",
        "pumpstream_realtime_fanout",
        "pumpstream_realtime_clients",
        "pumpstream_realtime_subscriptions",
        "pumpstream_realtime_changes_published",
        "pumpstream_change_log_rows",
    )
    return [line for line in text.splitlines() if line.startswith(wanted) and "_bucket" not in line]
