"""The "act at the pump" alarm of a lost STOP or PAUSE clears only when the infusion it was for is paused or ended
(review 3, "not carried out cleared by another order").

On the old code any session pausing or ending cleared `command_not_carried_out` for the whole pump. For a pump
infusing WITHOUT an order, the nurse's Stop (a STOP without a session) that the pump ignored raised it; an order then
placed on that pump (to take it over) that timed out (the busy original firmware ignores a START) cleared it, while
the pump still infused and nobody had acted at it.
"""

import pytest
from django.utils import timezone

from devices.models import Alarm, Command
from devices.services.commands import command_advance
from devices.services.requests import infusion_cancel, infusion_request, infusion_time_out
from devices.services.sessions import infusion_start
from devices.states import AlarmState, CommandKind, CommandState
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

RUNNING = {"status": "running", "flowRate": 1.5, "deliveredVolumeMl": 12.0}  # the original firmware: no infusionId


def not_carried_out(device_id: str) -> list[Alarm]:
    return list(Alarm.objects.filter(device__device_id=device_id, type="command_not_carried_out",
                                     state=AlarmState.ACTIVE))  # fmt: skip


def stop_ignored(device_id: str, capture) -> Command:
    """A pump infusing without an order; the nurse's Stop goes out and the pump does not act on it in time."""
    make_device(device_id, last_seen_at=timezone.now())
    ingest([report(device_id, "progress", {**RUNNING, "timestamp": 120000})], capture)
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=None, user=make_user())
    command_advance(device_id=device_id, command_pk=stop.pk, to=CommandState.SENT, now=timezone.now())
    command_advance(device_id=device_id, command_pk=stop.pk, to=CommandState.FAILED, now=timezone.now(),
                    error="the pump did not act on it in time")  # housekeeping at the deadline  # fmt: skip
    assert not_carried_out(device_id), "precondition: 'act at the pump' is raised"
    return stop


def test_an_unrelated_time_out_does_not_clear_the_alarm_of_a_stop_the_pump_ignored(django_capture_on_commit_callbacks):
    stop = stop_ignored("NCO_1", django_capture_on_commit_callbacks)
    ingest([report("NCO_1", "progress", {**RUNNING, "deliveredVolumeMl": 12.5, "timestamp": 121000}, 1)],
           django_capture_on_commit_callbacks)  # it still infuses  # fmt: skip
    order = infusion_start(device_id="NCO_1", order=make_order())  # a nurse tries to take it over
    infusion_time_out(infusion_id=order.infusion_id)  # the busy pump ignored the START
    ingest([report("NCO_1", "progress", {**RUNNING, "deliveredVolumeMl": 13.0, "timestamp": 122000}, 2)],
           django_capture_on_commit_callbacks)  # and still infuses  # fmt: skip
    assert Command.objects.get(pk=stop.pk).state == CommandState.FAILED
    assert not_carried_out("NCO_1"), (
        "the high 'The pump did not stop: act at the pump' alarm was cleared by an unrelated order's time-out, while "
        "the pump still infuses and nobody acted at it"
    )


@pytest.mark.parametrize("status", ["idle", "stopped"])
def test_it_clears_when_the_pump_reports_it_stopped(status, django_capture_on_commit_callbacks):
    stop_ignored("NCO_2", django_capture_on_commit_callbacks)
    ingest([report("NCO_2", "status", {"status": status}, 1)], django_capture_on_commit_callbacks)
    assert not not_carried_out("NCO_2"), f"the pump reports {status}: nobody needs to act at it for the lost STOP"


def test_a_lost_stop_that_was_to_clear_a_screen_asks_to_check_the_screen_not_to_stop_the_pump():
    """Its order ended unconfirmed; the STOP only clears its confirm screen. 'The pump did not stop: act at the pump'
    would send the nurse to stop whatever the pump runs, which nobody asked for."""
    make_device("SCREEN_1", last_seen_at=timezone.now())
    order = infusion_start(device_id="SCREEN_1", order=make_order())
    infusion_cancel(infusion_id=order.infusion_id, user=make_user("nurse"))
    stop = Command.objects.get(session=order, kind=CommandKind.STOP_INFUSION)
    assert stop.clears_screen, "precondition: the cancel's screen-clearing STOP"
    command_advance(device_id="SCREEN_1", command_pk=stop.pk, to=CommandState.EXPIRED, now=timezone.now(),
                    error="the broker did not take it in time")  # fmt: skip
    [alarm] = not_carried_out("SCREEN_1")
    assert "check the pump's screen" in alarm.message and "act at the pump" not in alarm.message
    assert alarm.priority == "medium"
