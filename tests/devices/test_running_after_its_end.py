"""A pump reporting that it infuses an infusion the server recorded as ended (completed, stopped) never looks idle:
with no order on the pump, it is a pump infusing without an order (`infusing_without_order`, or
`infusing_after_stop` when the server's STOP went out), as progress with no order already was.

On the old code a `running`/`started` status naming such an infusion was only audited
(`pump.report_for_other_infusion`): the pump stayed `idle` with no alarm while it said it was infusing.
"""

import logging

import pytest
from django.utils import timezone

from devices.models import Alarm, Device, DeviceEvent
from devices.services.commands import command_advance
from devices.services.requests import infusion_request
from devices.services.sessions import infusion_start
from devices.states import AlarmState, CommandKind, CommandState, PumpState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def unordered_alarm(device_id: str) -> str | None:
    alarm = Alarm.objects.filter(device__device_id=device_id, type__in=("infusing_without_order",
                                 "infusing_after_stop"), state=AlarmState.ACTIVE).first()  # fmt: skip
    return alarm.type if alarm else None


def ended_at_the_pump(device_id: str, how: str, capture) -> str:
    """An order confirmed, then completed or stopped at the pump (no STOP from the server); its infusion id."""
    make_device(device_id)
    session = confirmed_order(device_id)
    ingest([report(device_id, "status", {"status": how, "infusionId": session.infusion_id}, 1)], capture)
    assert Device.objects.get(device_id=device_id).pump_state == PumpState.IDLE
    return session.infusion_id


@pytest.mark.parametrize("how", ["completed", "stopped"])
@pytest.mark.parametrize("status", ["running", "started", "paused"])
def test_a_status_running_naming_an_ended_infusion_shows_the_pump_infusing_and_alarms(
    how, status, django_capture_on_commit_callbacks
):
    infusion_id = ended_at_the_pump(f"RAE_{how}_{status}", how, django_capture_on_commit_callbacks)
    device_id = f"RAE_{how}_{status}"
    ingest([report(device_id, "status", {"status": status, "infusionId": infusion_id}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    device = Device.objects.get(device_id=device_id)
    shown = PumpState.PAUSED if status == "paused" else PumpState.RUNNING
    assert (device.pump_state, unordered_alarm(device_id)) == (shown, "infusing_without_order"), (
        f"the pump reports '{status}' for infusion {infusion_id}, which the server recorded {how}, yet it is shown "
        f"'{device.pump_state}' with alarm {unordered_alarm(device_id)}: a pump infusing looks idle and healthy"
    )
    assert DeviceEvent.objects.filter(device=device, kind="pump.report_for_other_infusion").exists(), (
        "the report about the ended infusion is no longer audited"
    )


def test_running_after_the_servers_stop_went_out_raises_infusing_after_stop(django_capture_on_commit_callbacks):
    make_device("RAE_STOP")
    session = confirmed_order("RAE_STOP")
    stop = infusion_request(device_id="RAE_STOP", kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id)
    command_advance(device_id="RAE_STOP", command_pk=stop.pk, to=CommandState.SENT, now=timezone.now())  # it went out
    ingest([report("RAE_STOP", "status", {"status": "stopped", "infusionId": session.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session.refresh_from_db()
    assert session.status == SessionStatus.STOPPED
    ingest([report("RAE_STOP", "status", {"status": "running", "infusionId": session.infusion_id}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert unordered_alarm("RAE_STOP") == "infusing_after_stop", (
        f"the pump reports running its stopped infusion after the STOP went out; alarm: {unordered_alarm('RAE_STOP')}"
    )
    assert Device.objects.get(device_id="RAE_STOP").pump_state == PumpState.RUNNING


def test_repeated_running_statuses_raise_the_alarm_once(django_capture_on_commit_callbacks):
    infusion_id = ended_at_the_pump("RAE_TWICE", "completed", django_capture_on_commit_callbacks)
    for at in (2, 3, 4):
        ingest([report("RAE_TWICE", "status", {"status": "running", "infusionId": infusion_id}, at)],
               django_capture_on_commit_callbacks)  # fmt: skip
    alarms = Alarm.objects.filter(device__device_id="RAE_TWICE", type="infusing_without_order")
    assert [(alarm.state, alarm.count) for alarm in alarms] == [(AlarmState.ACTIVE, 1)], (
        "each heartbeat status re-raised the alarm"
    )


def test_progress_running_naming_an_ended_infusion_already_alarms(django_capture_on_commit_callbacks):
    """The progress road, for comparison (it raised the alarm before this change too)."""
    infusion_id = ended_at_the_pump("RAE_PROG", "completed", django_capture_on_commit_callbacks)
    ingest([report("RAE_PROG", "progress", {"status": "running", "infusionId": infusion_id, "flowRate": 2.0}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    device = Device.objects.get(device_id="RAE_PROG")
    assert (device.pump_state, unordered_alarm("RAE_PROG")) == (PumpState.RUNNING, "infusing_without_order")


def test_running_naming_the_ended_infusion_while_a_newer_order_runs_changes_nothing(
    django_capture_on_commit_callbacks,
):
    """A late copy about the old infusion while the pump runs the new order: audited only, as before."""
    ended_at_the_pump("RAE_NEWER", "completed", django_capture_on_commit_callbacks)
    first = Device.objects.get(device_id="RAE_NEWER").sessions.get()
    second = confirmed_order("RAE_NEWER", drug="Heparin")
    ingest([report("RAE_NEWER", "status", {"status": "running", "infusionId": first.infusion_id}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    second.refresh_from_db()
    assert second.status == SessionStatus.RUNNING and unordered_alarm("RAE_NEWER") is None


def test_a_stopped_status_naming_an_ended_infusion_still_changes_nothing(django_capture_on_commit_callbacks):
    infusion_id = ended_at_the_pump("RAE_IDLE", "completed", django_capture_on_commit_callbacks)
    infusion_start(device_id="RAE_IDLE", order=make_order(drug="Heparin"))
    ingest([report("RAE_IDLE", "status", {"status": "stopped", "infusionId": infusion_id}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert unordered_alarm("RAE_IDLE") is None


def test_the_log_and_the_audit_say_the_pump_state_and_alarm_were_applied(caplog, django_capture_on_commit_callbacks):
    infusion_id = ended_at_the_pump("RAE_LOG", "completed", django_capture_on_commit_callbacks)
    with caplog.at_level(logging.INFO, logger="devices.services.named"):
        ingest([report("RAE_LOG", "status", {"status": "running", "infusionId": infusion_id}, 2)],
               django_capture_on_commit_callbacks)  # fmt: skip
    said = [record.getMessage() for record in caplog.records if record.name == "devices.services.named"]
    assert said and "not applied" not in said[-1] and "pump state and alarm" in said[-1], (
        f"the pump is now shown infusing with infusing_without_order, yet the log says: {said}"
    )
    audit = DeviceEvent.objects.filter(device__device_id="RAE_LOG", kind="pump.report_for_other_infusion").last()
    assert audit.payload["applied"] == "pump state and alarm"


@pytest.mark.parametrize("end", ["completed", "stopped", "idle"])
def test_the_pump_reporting_that_infusion_ended_is_shown_idle_again(end, django_capture_on_commit_callbacks):
    """After a running status naming the ended infusion, the pump's `stopped`/`completed`/`idle` naming it was
    ignored as another infusion's: it stayed shown infusing, with infusing_without_order, while it was idle."""
    device_id = f"RAE_END_{end}"
    infusion_id = ended_at_the_pump(device_id, "completed", django_capture_on_commit_callbacks)
    ingest([report(device_id, "status", {"status": "running", "infusionId": infusion_id}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    ingest([report(device_id, "status", {"status": end, "infusionId": infusion_id}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    device = Device.objects.get(device_id=device_id)
    assert (device.pump_state, unordered_alarm(device_id)) == (PumpState.IDLE, None), (
        f"the pump reports '{end}' for the infusion it was shown running without an order, yet it is shown "
        f"'{device.pump_state}' with alarm {unordered_alarm(device_id)}"
    )


def test_a_late_end_of_an_ended_infusion_leaves_a_pump_infusing_another_one_alarmed(django_capture_on_commit_callbacks):
    infusion_id = ended_at_the_pump("RAE_LATE", "completed", django_capture_on_commit_callbacks)
    ingest([report("RAE_LATE", "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 1.0,
                                            "infusionId": "pump-own-7"}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert unordered_alarm("RAE_LATE") == "infusing_without_order", "the pump's own infusion (an id never given)"
    ingest([report("RAE_LATE", "status", {"status": "completed", "infusionId": infusion_id}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    device = Device.objects.get(device_id="RAE_LATE")
    assert (device.pump_state, unordered_alarm("RAE_LATE")) == (PumpState.RUNNING, "infusing_without_order"), (
        "a late copy of the earlier infusion's completion must not show a pump infusing another one idle"
    )
