"""Processes under `scripts/supervise.sh` (as `make run` starts them), and a bridge a chosen message takes down."""

import os
import signal
import subprocess
import time
from pathlib import Path

from django.utils import timezone

from tests.support.bridge import BridgeProcess
from tests.support.processes import ROOT, VENV_BIN, subprocess_env

SUPERVISE = ROOT / "scripts" / "supervise.sh"


def children_of(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def crashing_bridge_command(name: str) -> list[str]:
    """The real bridge, except that a message holding CRASH_MARKER kills its process (SIGKILL) while applied."""
    return [str(VENV_BIN / "python"), "-m", "tests.support.crashing_bridge", name]


class SupervisedBridge(BridgeProcess):
    """A bridge run by `scripts/supervise.sh` (quick restarts for tests); `kill_bridge()` SIGKILLs the bridge only."""

    def __init__(self, broker_url: str, realtime_url: str, log_dir: Path, *, crashing: bool = False, **env: str):
        env = {"SUPERVISE_MIN_DELAY_S": "1", "SUPERVISE_MAX_DELAY_S": "1", **env}
        super().__init__(broker_url, realtime_url, log_dir, **env)
        self.crashing = crashing

    def start(self, *, timeout: float = 30.0) -> "SupervisedBridge":
        started = timezone.now()
        command = (
            crashing_bridge_command(self.name)
            if self.crashing
            else [str(VENV_BIN / "python"), "manage.py", "run_mqtt_bridge", "--name", self.name]
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(SUPERVISE), "bridge", *command], cwd=ROOT, env=subprocess_env(**self.env), stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            self.wait_connected(since=started, timeout=timeout)
        except BaseException:
            self.stop()  # never leave a supervisor restarting a bridge behind
            raise
        return self

    def bridge_pid(self, *, timeout: float = 10.0) -> int:
        """The bridge process the supervisor runs now."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children = children_of(self.process.pid)
            if children:
                return children[0]
            time.sleep(0.05)
        raise TimeoutError(f"no bridge under the supervisor:\n{self.log_tail()}")

    def kill_bridge(self) -> int:
        """SIGKILL the bridge (not the supervisor); returns the killed pid."""
        pid = self.bridge_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def restarts(self) -> int:
        """How often the supervisor restarted the bridge so far (from its log)."""
        return self.log_path.read_text(errors="replace").count("supervise: bridge exited")
