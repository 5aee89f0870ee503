"""A pump whose clock is unset reports timestamps at year 1 with its zone's offset (a reviewer's finding): the
device timestamp parser raised OverflowError, so the report was dead-lettered as `internal_error` and its effect
lost (a STOP the pump carried out; an alarm became only `unreadable_alarm`). Now the timestamp is kept raw."""

import pytest

from devices.models import DeadLetter, InfusionSession
from devices.states import SessionStatus
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
def test_a_stopped_status_with_a_clock_far_off_still_stops_the_session(stamp, django_capture_on_commit_callbacks):
    make_device("F7")
    session = confirmed_order("F7")
    body = {"status": "stopped", "infusionId": session.infusion_id, "timestamp": stamp}
    ingest([report("F7", "status", body, 1)], django_capture_on_commit_callbacks)
    session = InfusionSession.objects.get(pk=session.pk)
    dead = list(DeadLetter.objects.values_list("reason", "detail"))
    assert session.status == SessionStatus.STOPPED, (
        f"the pump reported it stopped (its clock says {stamp}) but the infusion is still shown {session.status}; "
        f"dead letters: {dead}"
    )
