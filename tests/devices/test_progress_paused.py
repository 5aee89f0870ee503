"""A progress report saying `paused` is the pump saying it is paused: the session and the pump follow it, as for a
`paused` status or a MANUAL_PAUSE (contract: progress `status` running, paused, completed).

On the old code only the status and action topics moved the session: after paused progress the record (and every
screen) showed the order running at the progress's rate, and its silence watch expected progress every second.
"""

import pytest
from django.utils import timezone

from devices.models import Command, Device, DeviceEvent
from devices.services.commands import command_advance
from devices.services.requests import infusion_request
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, PumpState, SessionStatus
from devices.views.presenters import pump_summary
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

RUNNING = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 4.0, "progressPercent": 13}
PAUSED = {**RUNNING, "status": "paused", "deliveredVolumeMl": 4.1}


@pytest.mark.parametrize("named", [True, False], ids=["names-its-infusion", "original-firmware"])
def test_paused_progress_pauses_the_running_order_with_an_audit_entry(named, django_capture_on_commit_callbacks):
    make_device("PP_1")
    session = confirmed_order("PP_1")
    ids = {"infusionId": session.infusion_id} if named else {}
    ingest([report("PP_1", "progress", {**RUNNING, **ids}, 1), report("PP_1", "progress", {**PAUSED, **ids}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session.refresh_from_db()
    device = Device.objects.get(device_id="PP_1")
    row = pump_summary(device, session, [])
    assert (session.status, device.pump_state, row["sessionStatus"]) == ("paused", "paused", "paused"), (
        f"the pump reported its infusion paused in its progress, but the record shows the session {session.status} "
        f"on a pump '{device.pump_state}' and the overview '{row['sessionStatus']}' at {row['rateMlH']} mL/h"
    )
    assert session.status_reason == "paused at the pump"
    assert DeviceEvent.objects.filter(device=device, session=session, kind="session.paused").exists(), (
        "the move to paused was not audited"
    )


def test_paused_progress_completes_a_remote_pause_and_names_who_asked(django_capture_on_commit_callbacks):
    make_device("PP_2")
    nurse = make_user("pp-nurse")
    session = confirmed_order("PP_2")
    pause = infusion_request(device_id="PP_2", kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                             user=nurse)  # fmt: skip
    command_advance(device_id="PP_2", command_pk=pause.pk, to=CommandState.SENT, now=timezone.now())  # published
    ingest([report("PP_2", "progress", {**PAUSED, "infusionId": session.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session.refresh_from_db()
    pause.refresh_from_db()
    assert (session.status, session.status_reason) == (SessionStatus.PAUSED, "paused remotely by pp-nurse")
    assert pause.state == CommandState.DONE, f"the PAUSE the pump carried out was left {pause.state}"


def test_paused_progress_about_another_infusion_moves_nothing(django_capture_on_commit_callbacks):
    make_device("PP_3")
    session = confirmed_order("PP_3")
    ingest([report("PP_3", "progress", {**PAUSED, "infusionId": "inf_someone_else"}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session.refresh_from_db()
    device = Device.objects.get(device_id="PP_3")
    assert (session.status, device.pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING), (
        f"paused progress naming another infusion moved the running order to {session.status}"
    )
    assert not Command.objects.filter(device=device, kind=CommandKind.PAUSE_INFUSION).exists()


def test_paused_progress_naming_the_pending_order_makes_it_run_then_pause(django_capture_on_commit_callbacks):
    """As a `paused` status naming it: the pump had the order (evidence), and it is paused now."""
    make_device("PP_4")
    session = infusion_start(device_id="PP_4", order=make_order())
    ingest([report("PP_4", "progress", {**PAUSED, "infusionId": session.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session.refresh_from_db()
    assert session.status == SessionStatus.PAUSED, (
        f"paused progress naming the pending order left it {session.status}: the pump holds it paused"
    )
    assert session.running_evidence, "the report is evidence that the pump had the order"


@pytest.mark.parametrize("paused_by", ["progress", "status"])
def test_running_progress_after_a_pause_resumes_the_order(paused_by, django_capture_on_commit_callbacks):
    """The other half: a pump that resumed says so in its progress; the order must not stay "paused" while it runs."""
    make_device(f"PP_R_{paused_by}")
    device_id = f"PP_R_{paused_by}"
    session = confirmed_order(device_id)
    ids = {"infusionId": session.infusion_id}
    paused = report(device_id, "progress", {**PAUSED, **ids}, 1) if paused_by == "progress" else \
        report(device_id, "status", {"status": "paused", **ids}, 1)  # fmt: skip
    ingest([paused], django_capture_on_commit_callbacks)
    ingest([report(device_id, "progress", {**RUNNING, **ids, "deliveredVolumeMl": 4.2}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session.refresh_from_db()
    device = Device.objects.get(device_id=device_id)
    assert (session.status, device.pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING), (
        f"the pump reports the order running again, but the record shows it {session.status} on a pump "
        f"'{device.pump_state}' (its silence watch is off while it infuses)"
    )
    assert session.status_reason == "resumed at the pump"
