"""A command never published is never "done", and never the reason a session moved (suspicion checked in review 3).

On the old code a status report settled every PAUSE or STOP still under way, queued included: a PAUSE the bridge had
not yet published (the broker away) became `done` and the session "paused remotely by nurse" when someone paused the
pump at its own screen; and `idle` while a STOP waited unsent ended the session "stopped remotely by nurse" instead of
`interrupted` with `infusion_interrupted`. The pump cannot have acted on a command it never received: such a command
is now superseded ("not needed: the pump reported … before it was sent"), the move is the pump's own, and idle before
the end is an interruption.
"""

import pytest
from django.utils import timezone

from devices.models import Alarm, Command, InfusionSession
from devices.services.commands import command_advance
from devices.services.requests import infusion_cancel, infusion_request
from devices.services.sessions import infusion_start
from devices.states import AlarmState, CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

PROGRESS = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 10.0, "volumeRemainingMl": 20.0}


def running(device_id: str, capture) -> InfusionSession:
    make_device(device_id, last_seen_at=timezone.now())
    session = confirmed_order(device_id)
    ingest([report(device_id, "progress", {**PROGRESS, "infusionId": session.infusion_id})], capture)
    return session


def request(session: InfusionSession, kind: CommandKind) -> Command:
    return infusion_request(device_id=session.device.device_id, kind=kind, infusion_id=session.infusion_id,
                            user=make_user("nurse"))  # fmt: skip


def test_a_pause_never_sent_is_not_done_when_the_pump_is_paused_at_its_screen(django_capture_on_commit_callbacks):
    session = running("UNSENT_1", django_capture_on_commit_callbacks)
    pause = request(session, CommandKind.PAUSE_INFUSION)  # queued: the bridge has not published it
    ingest([report("UNSENT_1", "status", {"status": "paused", "infusionId": session.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # someone paused the pump at its screen  # fmt: skip
    session.refresh_from_db()
    pause.refresh_from_db()
    assert session.status == SessionStatus.PAUSED
    assert session.status_reason == "paused at the pump", f"the record says: {session.status_reason}"
    assert pause.state == CommandState.SUPERSEDED, f"a PAUSE never published ended {pause.state}"
    assert "before it was sent" in pause.error


def test_a_pause_sent_is_done_and_named_when_the_pump_reports_paused(django_capture_on_commit_callbacks):
    session = running("UNSENT_2", django_capture_on_commit_callbacks)
    pause = request(session, CommandKind.PAUSE_INFUSION)
    command_advance(device_id="UNSENT_2", command_pk=pause.pk, to=CommandState.SENT, now=timezone.now())
    ingest([report("UNSENT_2", "status", {"status": "paused", "infusionId": session.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session.refresh_from_db()
    assert session.status_reason == "paused remotely by nurse"
    assert Command.objects.get(pk=pause.pk).state == CommandState.DONE


def test_idle_while_a_stop_waits_unsent_is_an_interruption(django_capture_on_commit_callbacks):
    session = running("UNSENT_3", django_capture_on_commit_callbacks)
    stop = request(session, CommandKind.STOP_INFUSION)  # queued, never published
    ingest([report("UNSENT_3", "status", {"status": "idle"}, 1)], django_capture_on_commit_callbacks)
    session.refresh_from_db()
    stop.refresh_from_db()
    assert session.status == SessionStatus.INTERRUPTED, (
        f"the pump went idle before the infusion finished, and the STOP never reached it, yet the session ended "
        f"{session.status} ({session.status_reason})"
    )
    assert Alarm.objects.filter(session=session, type="infusion_interrupted", state=AlarmState.ACTIVE).exists()
    assert stop.state == CommandState.SUPERSEDED, f"a STOP never published ended {stop.state}"


def test_idle_after_a_stop_went_out_is_the_stop_done(django_capture_on_commit_callbacks):
    session = running("UNSENT_4", django_capture_on_commit_callbacks)
    stop = request(session, CommandKind.STOP_INFUSION)
    command_advance(device_id="UNSENT_4", command_pk=stop.pk, to=CommandState.SENT, now=timezone.now())
    ingest([report("UNSENT_4", "status", {"status": "idle"}, 1)], django_capture_on_commit_callbacks)
    session.refresh_from_db()
    assert (session.status, session.status_reason) == (SessionStatus.STOPPED, "stopped remotely by nurse")
    assert Command.objects.get(pk=stop.pk).state == CommandState.DONE


def test_a_stop_without_an_order_never_sent_is_not_done_when_the_pump_goes_idle(django_capture_on_commit_callbacks):
    make_device("UNSENT_5", last_seen_at=timezone.now())
    ingest([report("UNSENT_5", "progress", PROGRESS)], django_capture_on_commit_callbacks)
    stop = infusion_request(device_id="UNSENT_5", kind=CommandKind.STOP_INFUSION, infusion_id=None, user=make_user())
    ingest([report("UNSENT_5", "status", {"status": "idle"}, 1)], django_capture_on_commit_callbacks)
    assert Command.objects.get(pk=stop.pk).state == CommandState.SUPERSEDED, "a STOP never published is not done"


def test_a_cancels_stop_still_queued_goes_out_though_the_pump_reports_idle(django_capture_on_commit_callbacks):
    """The STOP after a cancel clears the pump's confirm screen, which an idle pump may show: an idle heartbeat
    before it is published neither ends it (done, on the old code) nor withdraws it: it goes out."""
    make_device("UNSENT_6", last_seen_at=timezone.now())
    nurse = make_user("nurse")
    order = infusion_start(device_id="UNSENT_6", order=make_order(), user=nurse)
    infusion_cancel(infusion_id=order.infusion_id, user=nurse)
    ingest([report("UNSENT_6", "status", {"status": "idle"}, 1)], django_capture_on_commit_callbacks)
    stop = Command.objects.get(device__device_id="UNSENT_6", kind=CommandKind.STOP_INFUSION)
    assert stop.state == CommandState.QUEUED, f"the STOP to clear the confirm screen ended {stop.state}, never sent"
