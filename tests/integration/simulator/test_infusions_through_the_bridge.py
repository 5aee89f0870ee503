"""Simulated pumps against a real Mosquitto and a real bridge: infusions started through the services end right."""

import pytest

from devices.models import Alarm, Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, Presence, PumpState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.bridge import wait_until
from tests.support.processes import ROOT
from tests.support.simulator import SimulatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SPEED = "120"  # two simulated minutes per progress message
ORDER = {"flow_rate_ml_min": 2.0, "planned_volume_ml": 10.0, "planned_time_min": 5.0,
         "bolus_enabled": True, "bolus_volume_ml": 2.0}  # fmt: skip


@pytest.fixture
def simulators(sim_broker, artifacts_dir):
    started: list[SimulatorProcess] = []

    def start(*args: str, interactive: bool = False) -> SimulatorProcess:
        process = SimulatorProcess(sim_broker.url, *args, log_dir=artifacts_dir).start(interactive=interactive)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def session_ended(infusion_id: str, status: SessionStatus, sim: SimulatorProcess, timeout: float = 30.0):
    """The session once it is `status`; a completed one once its completion (the summary) is recorded too: the pump's
    final progress (`completed`) ends it, the completion message follows it by a few milliseconds, maybe in the
    next batch (review 19)."""
    summarised = {"completion__isnull": False} if status == SessionStatus.COMPLETED else {}
    return wait_until(
        lambda: InfusionSession.objects.filter(infusion_id=infusion_id, status=status, **summarised).first(),
        timeout=timeout, message=f"session {infusion_id} never became {status}; simulator said:\n{sim.log_tail()}",
    )  # fmt: skip


def test_automatic_pump_completes_an_infusion_started_through_the_services(sim_bridge, simulators):
    make_device("SIMT_AUTO", has_presence=True)
    sim = simulators("SIMT_AUTO", "--auto", "--speed", SPEED, "--confirm-delay", "0.2")
    wait_until(lambda: Device.objects.filter(device_id="SIMT_AUTO", presence=Presence.ONLINE).exists(),
               message=f"the pump's retained online status never arrived:\n{sim.log_tail()}")  # fmt: skip
    session = infusion_start(device_id="SIMT_AUTO", order=make_order(**ORDER))
    done = session_ended(session.infusion_id, SessionStatus.COMPLETED, sim)
    assert done.confirmed_at is not None, "the pump's confirmation was not recorded"
    assert done.completion["summary"]["totalVolumeMl"] == 10.0, "the bolus must be counted once, inside 10 mL"
    assert done.reported_parameters["bolusVolumeMl"] == 2.0
    assert not Alarm.objects.filter(device__device_id="SIMT_AUTO", type="parameter_mismatch").exists()
    wait_until(lambda: Device.objects.get(device_id="SIMT_AUTO").pump_state == PumpState.IDLE,
               message="the pump never went idle")  # fmt: skip
    sim.stop()
    wait_until(lambda: Device.objects.get(device_id="SIMT_AUTO").presence == Presence.OFFLINE,
               message="a pump switched off must say offline")  # fmt: skip


def test_legacy_pump_completes_an_infusion_once_a_person_accepts_it(sim_bridge, simulators):
    make_device("SIMT_LEGACY", has_presence=False)
    sim = simulators("SIMT_LEGACY", "--legacy", "--speed", SPEED, interactive=True)
    sim.wait_for_output("device/SIMT_LEGACY/status")
    session = infusion_start(device_id="SIMT_LEGACY", order=make_order(**ORDER))
    sim.wait_for_output("received_start_command")
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PENDING, "nobody accepted it yet"
    sim.type("start")
    done = session_ended(session.infusion_id, SessionStatus.COMPLETED, sim)
    assert done.completion["summary"]["totalVolumeMl"] == 10.0
    assert done.reported_parameters["plannedVolumeMl"] == 10.0
    sim.type("quit")
    assert sim.wait(timeout=15) == 0


def test_legacy_pump_reject_at_the_screen_rejects_the_session(sim_bridge, simulators):
    make_device("SIMT_REJECT")
    sim = simulators("SIMT_REJECT", "--legacy", interactive=True)
    sim.wait_for_output("device/SIMT_REJECT/status")
    session = infusion_start(device_id="SIMT_REJECT", order=make_order(**ORDER))
    sim.wait_for_output("received_start_command")
    sim.type("reject")
    session_ended(session.infusion_id, SessionStatus.REJECTED, sim)


def test_occlusion_scenario_raises_and_clears_the_alarm_and_the_infusion_still_completes(sim_bridge, simulators):
    make_device("SIMT_OCCL", has_presence=True)
    sim = simulators("SIMT_OCCL", "--scenario", str(ROOT / "scenarios" / "occlusion.json"), "--speed", "30",
                     "--confirm-delay", "0.2")  # fmt: skip
    wait_until(lambda: Device.objects.filter(device_id="SIMT_OCCL", presence=Presence.ONLINE).exists(),
               message=f"the pump never came online:\n{sim.log_tail()}")  # fmt: skip
    session = infusion_start(device_id="SIMT_OCCL", order=make_order(**ORDER))
    alarm = wait_until(lambda: Alarm.objects.filter(device__device_id="SIMT_OCCL", type="occlusion").first(),
                       message=f"occlusion raised no alarm:\n{sim.log_tail()}")  # fmt: skip
    assert alarm.priority == "high"
    wait_until(lambda: InfusionSession.objects.filter(pk=session.pk, status=SessionStatus.PAUSED).exists(),
               message="the pump paused itself, the session must show it")  # fmt: skip
    wait_until(lambda: Alarm.objects.filter(pk=alarm.pk, state=AlarmState.CLEARED).exists(),
               message=f"occlusion_cleared did not clear the alarm:\n{sim.log_tail()}")  # fmt: skip
    session_ended(session.infusion_id, SessionStatus.COMPLETED, sim, timeout=40)
    assert sim.wait(timeout=30) == 0, f"the scenario did not finish:\n{sim.log_tail()}"
