"""A pump with presence says `online` once, retained, and nothing more while idle: only its Last Will, published by
the broker that saw its connection die, tells that it went away. Mosquitto crashed (SIGKILL: the OOM killer, a
segfault, the VM reset) and the pump switched off while the broker was down: no broker ever saw its connection die,
so no Will comes, and the broker's persistence brings its retained `online` back (review 34, finding 4). It must not
read Online for ever: a live pump reconnects to the new broker and says `online` again; one that does not is no
longer vouched for by any Will and turns Stale. The SIGTERM case (Mosquitto publishes the Wills as it stops) is the
control."""

import logging
import signal
import time

import pytest
from django.db import close_old_connections

from devices.models import Device
from devices.states import Connectivity
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.processes import free_port, subprocess_env
from tests.support.simulator import SimulatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_S = float(subprocess_env()["HEARTBEAT_TIMEOUT_S"])
GONE, ALIVE, MARKER = "PUMP_GONE", "PUMP_STAYS", "PUMP_MARK34"


def connectivity(device_id: str) -> str:
    close_old_connections()
    return Device.objects.get(device_id=device_id).connectivity(heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)


def bridge_caught_up(broker_url: str, bridge: BridgeProcess) -> None:
    """Another pump's news applied: the bridge is back on the broker and has read what it handed over before."""
    marker = PumpClient(broker_url, MARKER)
    try:
        wait_until(lambda: marker.publish("status", {"status": "testing", "batteryLevel": 7}) or
                   Device.objects.filter(device_id=MARKER, battery_level=7).exists(), timeout=40, interval=1,
                   message=f"the bridge never came back:\n{bridge.log_tail()}")  # fmt: skip
    finally:
        marker.close()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_a_pump_switched_off_while_the_broker_restarts_does_not_read_online_for_ever(how, own_broker, artifacts_dir):
    make_device(GONE, has_presence=True)
    make_device(ALIVE, has_presence=True)
    make_device(MARKER)
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    gone = SimulatorProcess(own_broker.url, GONE, "--auto", log_dir=artifacts_dir)  # idle, presence and a Will
    alive = SimulatorProcess(own_broker.url, ALIVE, "--auto", log_dir=artifacts_dir)
    try:
        gone.start()
        alive.start()
        wait_until(lambda: connectivity(GONE) == connectivity(ALIVE) == Connectivity.ONLINE, timeout=40,
                   message="the pumps never read online")  # fmt: skip
        time.sleep(6)  # past the broker's autosave (5 s in the tests' config): its store holds the retained `online`
        # `systemctl restart mosquitto` (SIGTERM: its store saved, the Wills published), or a crash (SIGKILL)...
        own_broker.stop(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
        gone.process.kill()  # ...and meanwhile one pump is switched off (or its network goes) for good
        gone.process.wait(timeout=10)
        own_broker.start()
        bridge_caught_up(own_broker.url, bridge)
        back = time.monotonic()
        seen = []
        while time.monotonic() < back + HEARTBEAT_TIMEOUT_S * 4:  # well past every timeout and grace of the tests
            seen.append((time.monotonic() - back, connectivity(GONE), connectivity(ALIVE)))
            time.sleep(0.5)
        gone_after = next((at for at, gone, _ in seen if gone != Connectivity.ONLINE), None)
        logger.warning("broker %s: the pump switched off read %s %s s after the bridge was back; the other %s",
                       how, seen[-1][1], gone_after and f"{gone_after:.1f}", seen[-1][2])  # fmt: skip
        seen = [(gone, alive) for _, gone, alive in seen]
        pump = Device.objects.get(device_id=GONE)
        assert seen[-1][0] != Connectivity.ONLINE, (
            f"the pump, switched off {HEARTBEAT_TIMEOUT_S * 4:.0f}+ s ago while the broker restarted, still reads"
            f" {seen[-1][0]!r} (presence {pump.presence!r}, last heard {pump.last_seen_at}): no Will was published"
        )
        assert seen[-1][1] == Connectivity.ONLINE, (
            f"the pump that stayed on (it reconnected and said `online` again) reads {seen[-1][1]!r} after the restart"
        )
    finally:
        gone.stop()
        alive.stop()
        bridge.stop()
