"""A pump's report that its infusion ended, paused or was rejected must not be lost to one odd field (review 19, 1).

A `completion`, an `actions` report (MANUAL_STOP / MANUAL_PAUSE) or a rejection (`confirmed: false`) refused by the
schema for one odd field was only dead-lettered: the ended (or paused) infusion stayed shown as running (the monitor's
live rate and time left, the overview's "infusing"), with no alarm, until the silence check's `communication_lost`
sent the nurse looking for a network fault at a pump that had finished or been stopped. Review 15 made a refused
`degraded` status still raise its alarm, and a refused `error` raises `unreadable_alarm`; a refused report of what the
pump does with the infusion is the same kind of news, and the one the screen then contradicts. Progress saying
`completed` (the pump's final report, accepted) moved nothing either.
"""

import pytest

from devices.models import Alarm, DeadLetter, Device, InfusionSession
from devices.states import PumpState, SessionStatus
from tests.factories import make_device
from tests.support.ingest import confirmed_order, send

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip
FINAL = {"status": "completed", "flowRate": 2.0, "deliveredVolumeMl": 30.0, "volumeRemainingMl": 0.0,
         "timeRemainingMin": 0.0, "progressPercent": 100}  # fmt: skip


def running_infusion(capture, device_id: str) -> InfusionSession:
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, parameters=READ_BACK)
    send(capture, device_id, "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 28.0,
                                           "volumeRemainingMl": 2.0, "timeRemainingMin": 1.0,
                                           "infusionId": session.infusion_id})  # fmt: skip
    return session


def shown(session: InfusionSession) -> tuple[str, str, list]:
    session.refresh_from_db()
    device = Device.objects.get(pk=session.device_id)
    alarms = list(Alarm.objects.filter(device=device, state="active").values_list("type", flat=True))
    return session.status, device.pump_state, alarms


# ---- progress saying `completed` ---------------------------------------------------------------------------------


def test_the_final_progress_saying_completed_does_not_leave_the_infusion_running_when_the_completion_is_refused(
    django_capture_on_commit_callbacks,
):
    """The pump's final progress said `completed` (accepted) and its completion was refused: the server heard the end
    and still showed the infusion running (`progress` with status `paused` paused the session; `completed` moved
    nothing, neither the session nor the pump's state)."""
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_FINAL")
    send(capture, "END_FINAL", "progress", {**FINAL, "infusionId": session.infusion_id}, 1)
    send(capture, "END_FINAL", "completion", {"completed": True, "infusionId": session.infusion_id,
                                              "timestamp": {"ms": 973010}}, 1.1)  # fmt: skip
    status, pump_state, alarms = shown(session)
    assert status != SessionStatus.RUNNING or alarms, (
        f"the pump's last progress said completed, 100 %, 0 mL left, and its completion was refused: the screen shows "
        f"the infusion {status} and the pump {pump_state} (expected {PumpState.IDLE}), with alarms {alarms}"
    )


@pytest.mark.parametrize("named", [True, False], ids=["naming-it", "naming-none"])
@pytest.mark.parametrize("paused_first", [False, True], ids=["running", "paused"])
def test_progress_saying_completed_completes_the_infusion_on_the_pump_with_it_as_the_final_progress(
    django_capture_on_commit_callbacks, named, paused_first
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_PROG")
    if paused_first:
        send(capture, "END_PROG", "status", {"status": "paused", "infusionId": session.infusion_id}, 0.5)
    final = {**FINAL, "infusionId": session.infusion_id} if named else FINAL
    send(capture, "END_PROG", "progress", final, 1)
    status, pump_state, alarms = shown(session)
    assert (status, pump_state, alarms) == (SessionStatus.COMPLETED, PumpState.IDLE, []), (
        f"the pump's progress said completed, 100 %, 0 mL left: the infusion is shown {status}, the pump {pump_state}, "
        f"alarms {alarms}"
    )
    assert session.status_reason == "completed at the pump"
    device = Device.objects.get(pk=session.device_id)
    assert (session.progress_on(device) or {}).get("progressPercent") == 100, (
        "the completed progress is not the ended infusion's final progress: the monitor loses its last figures"
    )


def test_progress_saying_completed_about_another_infusion_moves_nothing(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_OTHER")
    send(capture, "END_OTHER", "progress", {**FINAL, "infusionId": "inf_older"}, 1)
    status, pump_state, alarms = shown(session)
    assert (status, pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING), (
        f"progress naming another infusion moved the one on the pump: {status}, the pump {pump_state}"
    )


def test_progress_saying_completed_naming_the_pending_order_runs_it_first_then_completes_it(
    django_capture_on_commit_callbacks,
):
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("END_PENDING", has_presence=True)
    session = infusion_start(device_id="END_PENDING", order=make_order())
    send(capture, "END_PENDING", "progress", {**FINAL, "infusionId": session.infusion_id}, 1)
    status, pump_state, _alarms = shown(session)
    assert (status, pump_state) == (SessionStatus.COMPLETED, PumpState.IDLE), (
        f"the pump's final progress named the waiting order: it ran and completed, shown {status}, pump {pump_state}"
    )
    assert session.running_evidence, "the order ran on the pump's evidence, not recorded as such"
