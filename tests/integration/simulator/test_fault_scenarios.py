"""Scenario files against a real broker and bridge: network loss raises and clears `communication_lost`; bad
payloads are dead-lettered while the infusion still completes once."""

import pytest

from devices.models import Alarm, DeadLetter, Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, Presence, SessionStatus
from tests.factories import make_device, make_order
from tests.support.bridge import wait_until
from tests.support.processes import ROOT
from tests.support.simulator import SimulatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ORDER = {"flow_rate_ml_min": 2.0, "planned_volume_ml": 10.0, "planned_time_min": 5.0, "bolus_enabled": False}


def run_scenario(device_id: str, name: str, speed: str, sim_broker, artifacts_dir):
    make_device(device_id, has_presence=True)
    sim = SimulatorProcess(sim_broker.url, device_id, "--scenario", str(ROOT / "scenarios" / f"{name}.json"),
                           "--speed", speed, "--confirm-delay", "0.2", log_dir=artifacts_dir).start()  # fmt: skip
    wait_until(lambda: Device.objects.filter(device_id=device_id, presence=Presence.ONLINE).exists(),
               message=f"the pump never came online:\n{sim.log_tail()}")  # fmt: skip
    return sim, infusion_start(device_id=device_id, order=make_order(**ORDER))


def test_network_drop_fires_the_last_will_and_communication_lost_then_both_clear(sim_bridge, sim_broker, artifacts_dir):
    sim, session = run_scenario("SIMT_NET", "network_drop", "15", sim_broker, artifacts_dir)
    try:
        wait_until(lambda: Device.objects.get(device_id="SIMT_NET").presence == Presence.OFFLINE, timeout=20,
                   message=f"the Last Will never arrived:\n{sim.log_tail()}")  # fmt: skip
        lost = Alarm.objects.filter(device__device_id="SIMT_NET", type="communication_lost")
        alarm = wait_until(lambda: lost.first(), timeout=15, message="a silent running pump must raise it")
        assert alarm.priority == "high"
        wait_until(lambda: Alarm.objects.filter(pk=alarm.pk, state=AlarmState.CLEARED).exists(), timeout=20,
                   message=f"reconnecting did not clear communication_lost:\n{sim.log_tail()}")  # fmt: skip
        wait_until(lambda: InfusionSession.objects.filter(pk=session.pk, status=SessionStatus.COMPLETED).exists(),
                   timeout=40, message=f"the infusion did not complete after the drop:\n{sim.log_tail()}")  # fmt: skip
        assert sim.wait(timeout=30) == 0, sim.log_tail()
    finally:
        sim.stop()


def test_malformed_and_duplicate_messages_are_survived(sim_bridge, sim_broker, artifacts_dir):
    sim, session = run_scenario("SIMT_BAD", "malformed_payloads", "30", sim_broker, artifacts_dir)
    try:
        wait_until(lambda: DeadLetter.objects.filter(source__in=["SIMT_BAD", "BAD DEVICE!"]).count() >= 5,
                   timeout=20, message=f"bad payloads were not dead-lettered:\n{sim.log_tail()}")  # fmt: skip
        done = wait_until(
            lambda: InfusionSession.objects.filter(pk=session.pk, status=SessionStatus.COMPLETED,
                                                   completion__isnull=False).first(),  # its summary follows the end
            timeout=40, message=f"good messages after bad ones must still apply:\n{sim.log_tail()}",
        )  # fmt: skip
        assert done.completion["summary"]["totalVolumeMl"] == 10.0
        assert sim.wait(timeout=30) == 0, sim.log_tail()
    finally:
        sim.stop()
