"""A real Mosquitto on a free loopback port, with the project's limits and optional persistence."""

import shutil
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from tests.support.processes import free_port, stop, wait_for_port

CONFIG = """\
per_listener_settings false
listener {port} 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 100000
max_inflight_messages 1000
max_packet_size 2000000
persistence {persistence}
persistence_location {data}/
autosave_interval 5
sys_interval 1
user root
log_dest file {data}/mosquitto.log
log_type error
log_type warning
log_type notice
"""


def mosquitto_binary() -> str:
    """Where Mosquitto is; the project's set-up installs it."""
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if not found:
        raise RuntimeError("mosquitto is not installed: run `make test`, which installs it")
    return found


class MosquittoBroker:
    """One Mosquitto process; `restart()` stops it with SIGTERM so it saves its persistence file."""

    def __init__(self, data_dir: Path, *, persistence: bool = True, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.persistence = persistence
        self.process: subprocess.Popen | None = None
        self.started_at: datetime | None = None  # when the running broker started (wall clock): a pump last heard
        # before it is vouched for by no Last Will of this broker (`realtime/bridge/broker_start.py`)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> "MosquittoBroker":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "mosquitto.conf"
        config.write_text(
            CONFIG.format(port=self.port, data=self.data_dir, persistence="true" if self.persistence else "false")
        )
        self.started_at = datetime.now(UTC)
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, process=self.process)
        except BaseException:
            stop(self.process, sig=signal.SIGKILL)  # never leave a broker behind that nobody stops
            raise
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop(self.process, sig=sig)

    def restart(self) -> None:
        self.stop()
        self.start()
