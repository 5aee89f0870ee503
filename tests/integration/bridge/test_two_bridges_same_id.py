"""Review 34 (F3): two bridges started by mistake with one MQTT client id (BRIDGE_SLOTS=1, the default: the systemd
unit's and one run by hand to debug, or an old host's not stopped after a move).

The broker hands the session to whichever connected last and drops the other with MQTT 5 reason 142 "Session taken
over"; each reconnected 0.5 s later and took it back, for ever. Every reconnection began the reconnect grace again, so
the silence checks never ran: a pump killed mid-infusion raised no `communication_lost`, `/readyz` and the banner read
fine ~80 % of the time, and the log said only "broker connection lost". docs/operations.md: "Run exactly one bridge
per broker"; a mistake against it must be told, and must not turn the alarm off.
"""

import time

import pytest
from django.db import close_old_connections

from devices.models import Alarm, Device, InfusionSession
from devices.selectors import bridge_status
from devices.services.sessions import infusion_start
from devices.states import AlarmState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.bridge import BridgeProcess, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.processes import free_port, subprocess_env
from tests.support.simulator import SimulatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HEARTBEAT_TIMEOUT_S = float(subprocess_env()["HEARTBEAT_TIMEOUT_S"])


@pytest.fixture
def own_broker(tmp_path):
    """A Mosquitto of this test's own: the two bridges' fight over one session stays here."""
    server = MosquittoBroker(tmp_path / "mosquitto", persistence=True).start()
    yield server
    server.stop()


def test_a_silent_pump_raises_communication_lost_while_two_bridges_share_a_client_id(own_broker, artifacts_dir):
    device_id = "PUMP_TWINS"
    make_device(device_id, has_presence=True)
    forward_to = f"http://127.0.0.1:{free_port()}"
    first = BridgeProcess(own_broker.url, forward_to, artifacts_dir, name="bridge", MQTT_CLIENT_ID="pumpstream-bridge")
    second = BridgeProcess(own_broker.url, forward_to, artifacts_dir, name="bridge", MQTT_CLIENT_ID="pumpstream-bridge")
    first.log_path, second.log_path = (artifacts_dir / f"twins-{which}.log" for which in ("first", "second"))
    for bridge in (first, second):
        bridge.log_path.unlink(missing_ok=True)
    sim = None
    try:
        first.start()
        sim = SimulatorProcess(own_broker.url, device_id, "--auto", "--confirm-delay", "0.2", log_dir=artifacts_dir)
        sim.start()
        wait_until(lambda: Device.objects.get(device_id=device_id).last_seen_at is not None, timeout=15,
                   message="the pump never reported")  # fmt: skip
        session = infusion_start(device_id=device_id, order=make_order())
        wait_until(lambda: InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, timeout=15,
                   message=f"the infusion never ran:\n{sim.log_tail()}")  # fmt: skip
        second.start(wait=False)  # the mistake: a second bridge, same MQTT_URL and MQTT_CLIENT_ID, same name
        wait_until(lambda: "connected to the broker" in second.log_tail(), timeout=30, database=False,
                   message=f"the second bridge never connected:\n{second.log_tail()}")  # fmt: skip
        time.sleep(5)  # both running
        sim.process.kill()  # the pump dies mid-infusion: no goodbye (its Last Will says offline)
        sim.process.wait(timeout=10)
        killed = time.monotonic()
        looks, alarm = [], None
        while time.monotonic() < killed + HEARTBEAT_TIMEOUT_S + 15:
            close_old_connections()
            looks.append(bridge_status())
            lost = Alarm.objects.filter(device__device_id=device_id, type="communication_lost",
                                        state=AlarmState.ACTIVE)  # fmt: skip
            if lost.exists():
                alarm = time.monotonic() - killed
                break
            time.sleep(0.2)
        assert first.running() and second.running(), "both bridges run"
        held = sum(look["brokerConnected"] for look in looks)
        assert alarm is not None, (
            f"no communication_lost {HEARTBEAT_TIMEOUT_S + 15:.0f}s after the pump died mid-infusion, while two bridges"
            f" share one client id (monitoring read brokerConnected {held} of {len(looks)} looks);"
            f" first bridge's log:\n{first.log_tail(12)}"
        )
        logs = first.log_tail(400) + second.log_tail(400)
        assert "is a second bridge running with MQTT_CLIENT_ID=pumpstream-bridge?" in logs, (
            f"the log does not name the cause:\n{first.log_tail(12)}"
        )
        wait_until(lambda: bridge_status()["cause"] == "session_taken_over", timeout=15,
                   message="monitoring (/readyz, /ops/, the banner) never said why it is degraded")  # fmt: skip
    finally:
        if sim is not None:
            sim.stop()
        second.stop()
        first.stop()
