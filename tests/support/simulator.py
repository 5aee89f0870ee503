"""`manage.py simulate_pump` as a real subprocess for integration tests: start, type commands, read output, stop."""

import subprocess
import time
import uuid
from pathlib import Path

from tests.support.processes import ROOT, VENV_BIN, stop, subprocess_env

# Logged by `simulate_pump` once Django has booted, before it connects (every mode: fleet, scenario, prompt).
BOOTED = "simulating "
BOOT_TIMEOUT_S = 60.0  # Django boots in up to ~10 s at a load of 20 on the 2 cores (as the bridge's start allows)


class SimulatorProcess:
    """One simulate_pump process against `broker_url`; its output goes to a log file kept with the artifacts."""

    def __init__(self, broker_url: str, *args: str, log_dir: Path, **env: str) -> None:
        self.args = [str(arg) for arg in args]
        self.env = {"MQTT_URL": broker_url, **env}
        self.log_path = Path(log_dir) / f"simulate_pump-{uuid.uuid4().hex[:8]}.log"
        self.process: subprocess.Popen | None = None

    def start(self, *, interactive: bool = False, boot_timeout: float = BOOT_TIMEOUT_S) -> "SimulatorProcess":
        """Start it and wait until Django has booted in it (it says what it simulates, or it has exited: a
        refused argument); with `interactive`, standard input is a pipe for `type()`.

        The boot is not what the tests measure: at a load of 4 on the 2 cores it took 6 s of the 10 s a test
        then gave the pump's first message to reach the database through the bridge ('the pump's retained
        online status never arrived' at a load of 8-14)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "python"), "manage.py", "simulate_pump", *self.args],
            cwd=ROOT, env=subprocess_env(**self.env), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + boot_timeout
        while BOOTED not in self.output() and self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"simulate_pump not booted within {boot_timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def type(self, line: str) -> None:
        """Type one line at the prompt."""
        assert self.process is not None and self.process.stdin is not None, "start(interactive=True) first"
        self.process.stdin.write(f"{line}\n".encode())
        self.process.stdin.flush()

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_output(self, text: str, *, timeout: float = 15.0) -> str:
        """Block until `text` appears in the output; fail with the output's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return self.output()
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not printed within {timeout}s:\n{self.log_tail()}")

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for it to exit by itself; returns the exit code."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM: the pumps say goodbye and disconnect cleanly."""
        if self.process is not None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            stop(self.process)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])
