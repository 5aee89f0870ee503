"""A pump killed mid-infusion: its Last Will (modern) or the heartbeat timeout (legacy) shows it; communication_lost."""

import logging
import time

import pytest
from django.db import close_old_connections

from devices.models import Alarm, Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, Connectivity, SessionStatus
from tests.factories import make_device, make_order
from tests.support.bridge import wait_until
from tests.support.processes import subprocess_env
from tests.support.simulator import SimulatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_S = float(subprocess_env()["HEARTBEAT_TIMEOUT_S"])  # what the bridge runs with
FIRMWARES = {
    # firmware: (simulator flags, has presence, what the pump turns into when it vanishes)
    "modern": (["--auto", "--confirm-delay", "0.2"], True, Connectivity.OFFLINE),
    "legacy": (["--legacy", "--auto", "--auto-accept"], False, Connectivity.STALE),
}


def first_times(device_id: str, vanished: str, *, since: float, timeout: float = 20.0) -> tuple[float, float]:
    """Seconds from `since` until the pump read as `vanished`, and until `communication_lost` was active."""
    shown = alarm = None
    deadline = since + timeout
    while (shown is None or alarm is None) and time.monotonic() < deadline:
        close_old_connections()
        device = Device.objects.get(device_id=device_id)
        if shown is None and device.connectivity(heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S) == vanished:
            shown = time.monotonic() - since
        lost = Alarm.objects.filter(device=device, type="communication_lost", state=AlarmState.ACTIVE)
        if alarm is None and lost.exists():
            alarm = time.monotonic() - since
        time.sleep(0.05)
    assert shown is not None, f"the pump never turned {vanished} within {timeout}s"
    assert alarm is not None, f"communication_lost was not raised within {timeout}s"
    return shown, alarm


@pytest.mark.parametrize("firmware", sorted(FIRMWARES))
def test_pump_killed_mid_infusion_turns_offline_or_stale_and_raises_communication_lost(
    firmware, own_broker, own_bridge, artifacts_dir
):
    flags, has_presence, vanished = FIRMWARES[firmware]
    device_id = f"PUMP_KILL_{firmware.upper()}"
    make_device(device_id, has_presence=has_presence)
    sim = SimulatorProcess(own_broker.url, device_id, *flags, log_dir=artifacts_dir).start()
    try:
        wait_until(lambda: Device.objects.get(device_id=device_id).last_seen_at is not None, timeout=15,
                   message=f"the pump never reported:\n{sim.log_tail()}")  # fmt: skip
        session = infusion_start(device_id=device_id, order=make_order())
        wait_until(lambda: InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, timeout=15,
                   message=f"the infusion never ran:\n{sim.log_tail()}")  # fmt: skip
        wait_until(lambda: InfusionSession.objects.get(pk=session.pk).progress(), timeout=10,
                   message="no progress while running")  # fmt: skip
        sim.process.kill()  # no DISCONNECT, no goodbye: the broker sees the socket die
        sim.process.wait(timeout=10)
        killed_at = time.monotonic()
        shown_after, alarm_after = first_times(device_id, vanished, since=killed_at)
    finally:
        sim.stop()
    assert alarm_after < HEARTBEAT_TIMEOUT_S + 8, f"communication_lost took {alarm_after:.1f}s"
    lost = Alarm.objects.get(device__device_id=device_id, type="communication_lost", state=AlarmState.ACTIVE)
    assert lost.priority == "high", "communication_lost while infusing is a high-priority alarm"
    logger.warning(
        "%s pump killed mid-infusion: %s after %.2fs, communication_lost after %.2fs (heartbeat timeout %ss)",
        firmware, vanished, shown_after, alarm_after, HEARTBEAT_TIMEOUT_S,
    )  # fmt: skip
