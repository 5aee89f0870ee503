"""A throwaway Redis for a test: Debian's `redis-server` with production's config, on a free port, with a password.

It runs `deploy/redis/pumpstream.conf` itself (loopback bind, protected mode, the default user off, the
`pumpstream` ACL user limited to PumpStream's keys and channels, no persistence), its placeholder password
replaced by a random one, and its port, directory and log file of its own. `scripts/setup.sh --test` installs
`redis-server` with CI=true or WITH_REDIS=true; where it is absent the Redis tests skip, except under CI=true,
where a missing Redis fails them.
"""

import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT, free_port, stop, wait_for_port

CONFIG = ROOT / "deploy" / "redis" / "pumpstream.conf"
PLACEHOLDER = "CHANGE-ME-TO-A-LONG-RANDOM-PASSWORD"
USER = "pumpstream"


def redis_server_path() -> str | None:
    """Where `redis-server` is, or None."""
    return shutil.which("redis-server") or next(
        (path for path in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(path, os.X_OK)), None
    )


def redis_server_or_skip() -> str:
    """`redis-server`'s path; skips the test where it is missing, fails it under CI=true (CI installs it)."""
    path = redis_server_path()
    if path is None:
        message = "redis-server is not installed: run `WITH_REDIS=true scripts/setup.sh --test` (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI installs it, so its absence is a failure")
        pytest.skip(message)
    return path


class RedisServer:
    """One `redis-server` in its own directory; `url` carries the password, `url_without_password` does not."""

    def __init__(self, directory: Path) -> None:
        self.program = redis_server_or_skip()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = secrets.token_urlsafe(24)
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{USER}:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def url_without_password(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        config = self.directory / "redis.conf"
        production = CONFIG.read_text()
        if PLACEHOLDER not in production:
            raise RuntimeError(f"{CONFIG} no longer holds the password placeholder {PLACEHOLDER}")
        config.write_text(production.replace(PLACEHOLDER, self.password))
        options = {"port": str(self.port), "dir": str(self.directory), "logfile": str(self.log_path),
                   "daemonize": "no"}  # fmt: skip
        arguments = [item for name, value in options.items() for item in (f"--{name}", value)]
        self.process = subprocess.Popen([self.program, str(config), *arguments], cwd=self.directory,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_for_port(self.port, process=self.process, timeout=20)
        except BaseException:
            stop(self.process, sig=signal.SIGKILL)  # never leave a server behind that nobody stops
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def pause(self) -> None:
        """Stall the server (SIGSTOP), as a slow host or a long fork would."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
