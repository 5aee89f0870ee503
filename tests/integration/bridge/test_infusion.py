"""An infusion through a real Mosquitto and a real bridge: commands, confirmation, progress, actions, errors."""

import pytest

from devices.models import Alarm, Command, Device, InfusionSession, ProgressSample
from devices.services.sessions import infusion_start
from devices.states import AlarmState, CommandKind, CommandState, PumpState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PARAMETERS = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": True,
              "bolusVolumeMl": 5}  # fmt: skip


def session_in(status: str) -> InfusionSession | None:
    return InfusionSession.objects.filter(status=status).first()


def started_infusion(pump) -> InfusionSession:
    """A START that went out, reached the pump, and was confirmed: the session runs."""
    make_device("PUMP_0001")
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    start = wait_until(lambda: [c for c in pump.commands if c["command"] == "START_INFUSION"],
                       message="START_INFUSION never reached the pump")[0]  # fmt: skip
    assert start["payload"]["infusionId"] == session.infusion_id and start["expiresAt"]
    wait_until(lambda: Command.objects.filter(kind=CommandKind.START_INFUSION, state=CommandState.SENT).exists(),
               message="START not marked sent after the broker's PUBACK")  # fmt: skip
    pump.publish("status", {"status": "received_start_command"}, topic="device/PUMP_0001/status")
    wait_until(lambda: Command.objects.filter(state=CommandState.DELIVERED).exists(), message="START not delivered")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True, "parameters": PARAMETERS})
    wait_until(lambda: session_in(SessionStatus.RUNNING), message="confirmation did not start the session")
    return session


def test_command_whole_life_queued_sent_delivered_done(shared_bridge, pump):
    session = started_infusion(pump)
    command = Command.objects.get(kind=CommandKind.START_INFUSION)
    assert command.state == CommandState.DONE, "the pump's confirmation completes the START command"
    assert command.sent_at <= command.delivered_at <= command.done_at
    session.refresh_from_db()
    assert session.delivered_at is not None and session.reported_parameters == PARAMETERS
    assert Device.objects.get().pump_state == PumpState.RUNNING


def test_progress_without_infusion_id_goes_to_the_active_session_and_is_sampled(shared_bridge, pump):
    session = started_infusion(pump)
    for delivered in (5.04, 5.07):
        pump.publish("progress", {"deliveredVolumeMl": delivered, "progressPercent": {"time": 10, "volume": 17},
                                  "flowRate": 2.0, "status": "running", "timestamp": 65510})  # fmt: skip
    wait_until(lambda: (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("deliveredVolumeMl")
               == 5.07, message="progress not attributed to the running session")  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).progress()["progressPercent"] == 17
    assert ProgressSample.objects.filter(session=session, delivered_volume_ml=5.04).exists()
    assert not Alarm.objects.filter(type="infusing_without_order").exists()


def test_progress_without_any_session_is_kept_on_the_pump_with_an_alarm(shared_bridge, pump):
    make_device("PUMP_0001")
    pump.publish("progress", {"deliveredVolumeMl": 1.5, "status": "running"})
    alarm = wait_until(lambda: Alarm.objects.filter(type="infusing_without_order").first(),
                       message="progress with no session raised no infusing_without_order")  # fmt: skip
    assert alarm.priority == "high"
    assert Device.objects.get().latest_progress["deliveredVolumeMl"] == 1.5


def test_actions_pause_resume_stop_at_the_pump(shared_bridge, pump):
    session = started_infusion(pump)
    pump.publish("actions", {"action": "MANUAL_PAUSE", "source": "device_screen"}, retain=True)
    wait_until(lambda: session_in(SessionStatus.PAUSED), message="MANUAL_PAUSE did not pause the session")
    assert Device.objects.get().pump_state == PumpState.PAUSED
    pump.publish("actions", {"action": "MANUAL_RESUME", "infusionId": session.infusion_id})
    wait_until(lambda: session_in(SessionStatus.RUNNING), message="MANUAL_RESUME did not resume")
    pump.publish("actions", {"action": "MANUAL_STOP"})
    wait_until(lambda: session_in(SessionStatus.STOPPED), message="MANUAL_STOP did not stop")
    assert Device.objects.get().pump_state == PumpState.IDLE
    pump.publish("actions", b"", retain=True)  # clear the retained message for later tests


def test_status_paused_running_stopped_move_the_session(shared_bridge, pump):
    started_infusion(pump)
    for status, expected in (("paused", SessionStatus.PAUSED), ("running", SessionStatus.RUNNING),
                             ("stopped", SessionStatus.STOPPED)):  # fmt: skip
        pump.publish("status", {"status": status})
        wait_until(lambda expected=expected: session_in(expected), message=f"status {status} did not apply")


def test_completion_without_infusion_id_completes_the_running_session(shared_bridge, pump):
    session = started_infusion(pump)
    pump.publish("completion", {"completed": True, "completedAt": 973010, "summary": {"totalVolumeMl": 30}})
    wait_until(lambda: session_in(SessionStatus.COMPLETED), message="completion did not complete the session")
    session.refresh_from_db()
    assert session.completion["summary"] == {"totalVolumeMl": 30}
    assert Device.objects.get().pump_state == PumpState.IDLE


def test_status_completed_completes_the_session(shared_bridge, pump):
    started_infusion(pump)
    pump.publish("status", {"status": "completed"})
    wait_until(lambda: session_in(SessionStatus.COMPLETED), message="status completed did not complete")


def test_confirmation_with_other_parameters_raises_mismatch(shared_bridge, pump):
    make_device("PUMP_0001")
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True,
                              "parameters": {**PARAMETERS, "flowRateMlMin": 2.5}})  # fmt: skip
    alarm = wait_until(lambda: Alarm.objects.filter(type="parameter_mismatch").first(),
                       message="a different rate raised no parameter_mismatch")  # fmt: skip
    assert alarm.priority == "high"
    assert InfusionSession.objects.get().reported_parameters["flowRateMlMin"] == 2.5


def test_confirmed_false_rejects_and_unknown_session_is_a_dead_letter(shared_bridge, pump):
    from devices.models import DeadLetter

    make_device("PUMP_0001")
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    pump.publish("infusion", {"infusionId": "inf_someone_else", "confirmed": True})
    wait_until(lambda: DeadLetter.objects.filter(reason="unknown_session").exists(),
               message="a confirmation for an unknown session was not rejected")  # fmt: skip
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": False})
    wait_until(lambda: session_in(SessionStatus.REJECTED), message="confirmed:false did not reject")


def test_status_rejected_rejects_the_pending_session(shared_bridge, pump):
    make_device("PUMP_0001")
    infusion_start(device_id="PUMP_0001", order=make_order())
    # the original firmware's answers name no infusion: they are about the order once its START reached the pump
    wait_until(lambda: [c for c in pump.commands if c["command"] == "START_INFUSION"],
               message="START_INFUSION never reached the pump")  # fmt: skip
    pump.publish("status", {"status": "received_start_command"}, topic="device/PUMP_0001/status")
    pump.publish("status", {"status": "rejected"}, topic="device/PUMP_0001/status")
    wait_until(lambda: session_in(SessionStatus.REJECTED), message="status rejected did not reject")


def test_error_maps_priority_and_cleared_clears(shared_bridge, pump):
    make_device("PUMP_0001")
    pump.publish("error", {"type": "bubble_detected", "severity": "HIGH", "message": "Air bubble"})
    pump.publish("error", {"type": "occlusion", "errorCode": 7, "errorMessage": "legacy text"})
    pump.publish("error", {"type": "door_open", "severity": "warning"})
    wait_until(lambda: Alarm.objects.count() == 3, message="errors did not become alarms")
    assert Alarm.objects.get(type="occlusion").priority == "high", "unknown severity maps to high"
    assert Alarm.objects.get(type="occlusion").message == "legacy text"
    assert Alarm.objects.get(type="occlusion").error_code == "7"
    assert Alarm.objects.get(type="door_open").priority == "medium"
    pump.publish("error", {"type": "bubble_cleared", "severity": "high"})
    wait_until(lambda: Alarm.objects.filter(type="bubble_detected", state=AlarmState.CLEARED).exists(),
               message="bubble_cleared did not clear bubble_detected")  # fmt: skip


def test_confirmation_timeout_times_out_and_queues_stop(shared_bridge, pump):
    make_device("PUMP_0001")
    infusion_start(device_id="PUMP_0001", order=make_order())
    wait_until(lambda: session_in(SessionStatus.TIMED_OUT), timeout=15, message="pending start never timed out")
    wait_until(lambda: [c for c in pump.commands if c["command"] == "STOP_INFUSION"],
               message="a timed-out START was not followed by STOP_INFUSION")  # fmt: skip


def test_silent_running_session_raises_communication_lost_cleared_by_next_message(shared_bridge, pump):
    started_infusion(pump)
    alarm = wait_until(lambda: Alarm.objects.filter(type="communication_lost", state=AlarmState.ACTIVE).first(),
                       timeout=15, message="silence while running raised no communication_lost")  # fmt: skip
    assert alarm.priority == "high"
    pump.publish("progress", {"deliveredVolumeMl": 6.0, "status": "running"})
    wait_until(lambda: Alarm.objects.filter(type="communication_lost", state=AlarmState.CLEARED).exists(),
               message="the next message did not clear communication_lost")  # fmt: skip
