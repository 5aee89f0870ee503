"""The unordered-infusion alarm raised for an ended infusion a report names is tied to that infusion, whichever road
raised it (progress or status), so the pump's own end of that infusion shows it idle and clears the alarm.

Review 4 (MEDIUM-HIGH): progress naming an ended infusion raised `infusing_without_order` tied to nothing, and
`infusing_after_stop` was tied to the infusion of the pump's last STOP (an older one); the pump's own `completed`
for the infusion it was shown running then cleared nothing: shown running, a HIGH alarm sounding, at an idle pump.
A STOP to an older infusion says nothing about a later one that ended normally: no `infusing_after_stop` for it.
"""

import pytest
from django.utils import timezone

from devices.models import Alarm, Device
from devices.services.commands import command_advance
from devices.services.requests import infusion_request
from devices.states import AlarmState, CommandKind, CommandState, PumpState
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def unordered_alarm(device_id: str) -> Alarm | None:
    return Alarm.objects.filter(device__device_id=device_id, type__in=("infusing_without_order",
                                "infusing_after_stop"), state=AlarmState.ACTIVE).first()  # fmt: skip


def shown(device_id: str) -> tuple[str, str | None]:
    alarm = unordered_alarm(device_id)
    return Device.objects.get(device_id=device_id).pump_state, alarm.type if alarm else None


def running_report(device_id: str, road: str, infusion_id: str, at_s: float):
    if road == "progress":
        body = {"status": "running", "infusionId": infusion_id, "flowRate": 2.0, "deliveredVolumeMl": 1.0}
        return report(device_id, "progress", body, at_s)
    return report(device_id, "status", {"status": "running", "infusionId": infusion_id}, at_s)


def stopped_remotely(device_id: str, capture) -> str:
    """An order stopped by the server's STOP (reported stopped by the pump); its infusion id."""
    first = confirmed_order(device_id)
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=first.infusion_id)
    command_advance(device_id=device_id, command_pk=stop.pk, to=CommandState.SENT, now=timezone.now())  # it went out
    ingest([report(device_id, "status", {"status": "stopped", "infusionId": first.infusion_id}, 1)], capture)
    return first.infusion_id


@pytest.mark.parametrize("end", ["completed", "stopped", "idle"])
def test_progress_shown_infusion_ends_when_the_pump_says_so(end, django_capture_on_commit_callbacks):
    device_id = f"NAMED_PRG_{end}"
    make_device(device_id)
    session = confirmed_order(device_id)
    ingest([report(device_id, "status", {"status": "completed", "infusionId": session.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    ingest([running_report(device_id, "progress", session.infusion_id, 2)], django_capture_on_commit_callbacks)
    assert shown(device_id) == (PumpState.RUNNING, "infusing_without_order")
    assert unordered_alarm(device_id).session_id == session.pk, "the alarm is not tied to the infusion it is about"
    ingest([report(device_id, "status", {"status": end, "infusionId": session.infusion_id}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert shown(device_id) == (PumpState.IDLE, None), (
        f"the pump reports '{end}' for the infusion its progress showed running without an order, yet it is shown "
        f"{shown(device_id)}"
    )


@pytest.mark.parametrize("road", ["status", "progress"])
def test_an_older_stop_does_not_make_a_later_normally_ended_infusion_after_stop(
    road, django_capture_on_commit_callbacks
):
    device_id = f"NAMED_OLD_STOP_{road}"
    make_device(device_id)
    stopped_remotely(device_id, django_capture_on_commit_callbacks)
    second = confirmed_order(device_id, drug="Heparin")
    ingest([report(device_id, "status", {"status": "completed", "infusionId": second.infusion_id}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    ingest([running_report(device_id, road, second.infusion_id, 3)], django_capture_on_commit_callbacks)
    assert shown(device_id) == (PumpState.RUNNING, "infusing_without_order"), (
        f"{second.infusion_id} ended normally (no STOP was sent for it); reported running again it is shown "
        f"{shown(device_id)}: a STOP to an older infusion is not about it"
    )
    assert unordered_alarm(device_id).session_id == second.pk
    ingest([report(device_id, "status", {"status": "completed", "infusionId": second.infusion_id}, 4)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert shown(device_id) == (PumpState.IDLE, None), (
        f"the pump reports 'completed' for {second.infusion_id}, the infusion it was shown running, yet it is shown "
        f"{shown(device_id)}"
    )


@pytest.mark.parametrize("road", ["status", "progress"])
def test_an_infusion_running_after_its_own_stop_is_after_stop_and_ends_with_it(
    road, django_capture_on_commit_callbacks
):
    device_id = f"NAMED_OWN_STOP_{road}"
    make_device(device_id)
    infusion_id = stopped_remotely(device_id, django_capture_on_commit_callbacks)
    ingest([running_report(device_id, road, infusion_id, 2)], django_capture_on_commit_callbacks)
    assert shown(device_id) == (PumpState.RUNNING, "infusing_after_stop")
    assert unordered_alarm(device_id).session.infusion_id == infusion_id
    ingest([report(device_id, "status", {"status": "stopped", "infusionId": infusion_id}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert shown(device_id) == (PumpState.IDLE, None)


def test_progress_naming_no_known_infusion_is_tied_to_none(django_capture_on_commit_callbacks):
    device_id = "NAMED_UNKNOWN"
    make_device(device_id)
    stopped = stopped_remotely(device_id, django_capture_on_commit_callbacks)
    ingest([running_report(device_id, "progress", "inf_never_ours", 2)], django_capture_on_commit_callbacks)
    assert shown(device_id) == (PumpState.RUNNING, "infusing_after_stop"), "the server's last STOP went out"
    assert unordered_alarm(device_id).session.infusion_id == stopped, "tied to the last STOP's infusion, as before"
