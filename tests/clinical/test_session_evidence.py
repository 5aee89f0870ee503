"""Evidence wins: a pump whose reports show it infusing a pending order is running it, for both firmwares.

Through the real broker, bridge and Daphne (CONFIRMATION_TIMEOUT_S is 6 s in tests). On the old code the
session stayed pending, timed out, and the server published STOP_INFUSION to a pump that was infusing.
"""

import time

import pytest

from devices.models import Command
from devices.services.requests import infusion_request
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
from tests.clinical.scenario import (
    active_alarm,
    commands_of,
    legacy_step,
    legacy_steps,
    published,
    replay,
    wait_status,
)
from tests.factories import make_device, make_order
from tests.support.bridge import wait_until
from tests.support.processes import subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONFIRMATION_TIMEOUT_S = float(subprocess_env()["CONFIRMATION_TIMEOUT_S"])


def start_reaching(pump, device_id: str):
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    wait_until(lambda: published(pump, "START_INFUSION"), message="START_INFUSION never reached the pump")
    return session


def assert_no_stop_after_timeout(pump, device_id: str, session) -> None:
    """Past the confirmation timeout (+2 s), nothing stopped the pump and the session still runs."""
    time.sleep(max(0.0, CONFIRMATION_TIMEOUT_S + 2 - (time.time() - session.created_at.timestamp())))
    assert published(pump, "STOP_INFUSION") == [], "the server sent STOP to a pump reporting that it infuses the order"
    assert wait_status(session.infusion_id, SessionStatus.RUNNING).status == SessionStatus.RUNNING


def test_modern_running_status_and_progress_with_the_pending_id_run_it_without_a_confirmation(
    clinical_bridge, clinical_pump
):
    pump = clinical_pump("CLN_EVID_M")
    session = start_reaching(pump, "CLN_EVID_M")
    pump.publish("status", {"status": "running", "infusionId": session.infusion_id})  # the confirmation is lost
    for delivered in (0.5, 1.0, 1.5):
        pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "flowRate": 2.0,
                                  "deliveredVolumeMl": delivered, "volumeRemainingMl": 30 - delivered})  # fmt: skip
    running = wait_status(session.infusion_id, SessionStatus.RUNNING, message="evidence did not make the session run")
    assert running.read_back == "unverified", "running on evidence: the read-back is not verified"
    assert running.running_evidence, "the session records what showed it running"
    assert_no_stop_after_timeout(pump, "CLN_EVID_M", session)
    start = commands_of("CLN_EVID_M", CommandKind.START_INFUSION)[0]
    assert start.state == CommandState.DONE, f"the START the pump carried out ended {start.state}"
    wait_until(lambda: (running.__class__.objects.get(pk=running.pk).progress() or {}).get("deliveredVolumeMl")
               == 1.5, message="the progress was not attributed to the session")  # fmt: skip


def test_modern_progress_alone_with_the_pending_id_runs_it(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_EVID_P")
    session = start_reaching(pump, "CLN_EVID_P")
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "flowRate": 2.0,
                              "deliveredVolumeMl": 0.2, "timeRemainingMin": 14.9})  # fmt: skip
    wait_status(session.infusion_id, SessionStatus.RUNNING, message="progress naming the order did not run it")
    assert_no_stop_after_timeout(pump, "CLN_EVID_P", session)


def test_original_firmware_started_and_progress_after_received_start_command_run_it(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_EVID_L")
    session = start_reaching(pump, "CLN_EVID_L")
    steps = legacy_steps("infusion", session.infusion_id, "CLN_EVID_L")
    replay(pump, legacy_step(steps, "/status", status="received_start_command"))
    # the retained bolus and confirmation are lost; the firmware's `started` and progress (no infusionId) arrive
    replay(pump, legacy_step(steps, "/status", status="started"), legacy_step(steps, "/progress", status="running"))
    running = wait_status(session.infusion_id, SessionStatus.RUNNING,
                          message="the original firmware's started/progress did not run the pending order")  # fmt: skip
    assert running.read_back == "unverified"
    assert_no_stop_after_timeout(pump, "CLN_EVID_L", session)


def test_original_firmware_bolus_report_with_the_session_id_runs_it(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_EVID_B")
    session = start_reaching(pump, "CLN_EVID_B")
    steps = legacy_steps("infusion", session.infusion_id, "CLN_EVID_B")
    replay(pump, legacy_step(steps, "/bolus"))
    wait_status(session.infusion_id, SessionStatus.RUNNING, message="a bolus report with the order's id did not run it")
    # the confirmation arriving later is still compared with the order
    replay(pump, legacy_step(steps, "/infusion"))
    wait_until(lambda: session.__class__.objects.get(pk=session.pk).read_back == "match",
               message="a confirmation after the evidence was not read back")  # fmt: skip
    pump.publish("bolus", b"", retain=True)
    pump.publish("infusion", b"", retain=True)


def test_progress_without_received_start_is_not_evidence_and_the_time_out_sends_no_stop(clinical_bridge, clinical_pump):
    """Original firmware: progress without its received_start_command does not prove the order, but the pump
    reports infusing, so the time-out sends no STOP on the server's own account."""
    pump = clinical_pump("CLN_EVID_N")
    session = start_reaching(pump, "CLN_EVID_N")
    pump.publish("progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.1})
    wait_status(session.infusion_id, SessionStatus.TIMED_OUT, timeout=CONFIRMATION_TIMEOUT_S + 6)
    time.sleep(1.0)
    assert published(pump, "STOP_INFUSION") == [], "STOP was sent on the server's own account to an infusing pump"


def test_a_pump_reporting_running_after_a_stop_raises_infusing_after_stop(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_AFTER_STOP")
    session = start_reaching(pump, "CLN_AFTER_STOP")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True})
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    infusion_request(device_id="CLN_AFTER_STOP", kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id)
    wait_until(lambda: published(pump, "STOP_INFUSION"), message="STOP never reached the pump")
    pump.publish("status", {"status": "stopped"})
    wait_status(session.infusion_id, SessionStatus.STOPPED)
    pump.publish("progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 3.0})
    alarm = wait_until(lambda: active_alarm("CLN_AFTER_STOP", "infusing_after_stop"),
                       message="running after a STOP raised no infusing_after_stop")  # fmt: skip
    assert alarm.priority == "high"
    assert Command.objects.filter(device__device_id="CLN_AFTER_STOP", kind=CommandKind.STOP_INFUSION).count() == 1, (
        "the server must not send STOP again on its own"
    )
    pump.publish("status", {"status": "stopped"})
    wait_until(lambda: active_alarm("CLN_AFTER_STOP", "infusing_after_stop") is None,
               message="infusing_after_stop did not clear when the pump stopped")  # fmt: skip
