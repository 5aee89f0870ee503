"""Item 7 of issue 15: under `make run`, one dead process no longer stops the demo.

The Procfile's processes run under honcho exactly as `make run` starts them (on free ports, the test
database, their own broker directory). A simulated pump, the bridge and Daphne are SIGKILLed: each is
restarted by `scripts/supervise.sh`, the broker and the other pump keep running, and the
ward's pumps are heard again. On the old main honcho stopped every process when the pump died.
"""

import logging
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.utils import timezone

from devices.models import BridgeStatus, Device
from tests.factories import make_device
from tests.support.bridge import wait_until
from tests.support.processes import ROOT, VENV_BIN, free_port, free_port_pair, subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)
ROLES = {  # what identifies each Procfile process on its command line
    "broker": "mosquitto",
    "web": "daphne",
    "bridge": "run_mqtt_bridge",
    "pump": "simulate_pump PUMP_0001",
    "legacy_pump": "simulate_pump PUMP_0003",
}
KILLED = ("pump", "bridge", "web")


def descendants(root: int) -> dict[int, str]:
    """Every process under `root`, with its command line (from /proc)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = commands.get(pid, "")
                frontier.append(pid)
    return found


def role_pids(root: int) -> dict[str, int]:
    """The process of each role (not its supervisor or shell), by command line."""
    pids = {}
    for pid, command in descendants(root).items():
        if "supervise.sh" in command or command.startswith(("/bin/sh", "sh ")):
            continue
        for role, marker in ROLES.items():
            if marker in command and "after_bridge" not in command:
                pids[role] = pid
    return pids


def http_ok(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def heard_since(device_id: str, since) -> bool:
    seen = Device.objects.get(device_id=device_id).last_seen_at
    return seen is not None and seen > since


@pytest.fixture
def demo(tmp_path, artifacts_dir):
    """`honcho start -f Procfile` as `make run` runs it; yields (honcho process, log path)."""
    make_device("PUMP_0001")
    make_device("PUMP_0003")
    web_port, log_path = free_port_pair(), artifacts_dir / "demo-supervision.log"
    env = subprocess_env(WEB_PORT=str(web_port), MQTT_PORT=str(free_port()), RUN_DIR=str(tmp_path / "run"),
                         DJANGO_DEBUG="true", SUPERVISE_MIN_DELAY_S="1", SUPERVISE_MAX_DELAY_S="1")  # fmt: skip
    env.pop("MQTT_URL", None)
    env.pop("REALTIME_INTERNAL_URL", None)
    with log_path.open("wb") as log:
        honcho = subprocess.Popen([str(VENV_BIN / "honcho"), "start", "-f", "Procfile"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        yield honcho, log_path, web_port
    finally:
        left = descendants(honcho.pid)
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)
            try:
                honcho.wait(timeout=20)
            except subprocess.TimeoutExpired:
                honcho.kill()
        for pid in left:  # anything of ours that outlived honcho
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_killed_pump_bridge_and_daphne_are_restarted_and_the_rest_keeps_running(demo):
    honcho, log_path, web_port = demo
    started = timezone.now()
    wait_until(lambda: heard_since("PUMP_0001", started) and heard_since("PUMP_0003", started), timeout=90,
               message="the demo's pumps were never heard", interval=0.5)  # fmt: skip
    before = role_pids(honcho.pid)
    assert set(before) == set(ROLES), f"not every Procfile process is running: {before}"

    killed_at = timezone.now()
    for role in KILLED:
        os.kill(before[role], signal.SIGKILL)
    time.sleep(1.0)
    assert honcho.poll() is None, f"honcho stopped the demo:\n{log_path.read_text(errors='replace')[-3000:]}"

    def restarted() -> dict[str, int] | None:
        now = role_pids(honcho.pid)
        fresh = all(role in now and now[role] != before[role] for role in KILLED)
        return now if fresh else None

    after = wait_until(restarted, timeout=30, message="the killed pump, bridge and Daphne were not restarted")
    for role in set(ROLES) - set(KILLED):
        assert after.get(role) == before[role], f"{role} was restarted or stopped: {before} -> {after}"
    wait_until(lambda: BridgeStatus.objects.filter(broker_connected=True, broker_connected_since__gt=killed_at)
               .exists(), timeout=30, message="the restarted bridge never held the broker")  # fmt: skip
    wait_until(lambda: heard_since("PUMP_0001", killed_at), timeout=60, interval=0.5,
               message="the restarted pump was never heard again")  # fmt: skip
    wait_until(lambda: http_ok(f"http://127.0.0.1:{web_port}/healthz"), timeout=30, message="Daphne never came back")
    log = log_path.read_text(errors="replace")
    for role in KILLED:
        assert f"supervise: {role} exited with status 137" in log, f"the {role}'s exit was not logged"
    back_after = (timezone.now() - killed_at).total_seconds()
    logger.warning("demo: pump, bridge and Daphne SIGKILLed, each restarted, broker and legacy pump untouched; "
                   "the pump was heard again %.1f s after the kill", back_after)  # fmt: skip
