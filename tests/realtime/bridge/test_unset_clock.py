"""A pump whose clock is unset reports timestamps at year 1 with its zone's offset (a reviewer's finding): the
device timestamp parser raised OverflowError, so the report was dead-lettered as `internal_error` and its effect
lost (a STOP the pump carried out; an alarm became only `unreadable_alarm`). Now the timestamp is kept raw."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import DeadLetter, InfusionSession
from devices.services.changes import device_lock
from devices.services.sessions import infusion_confirm, infusion_start
from devices.states import SessionStatus
from realtime.bridge.batch import BatchIngest
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db


def ingest(batch, capture):
    with capture(execute=True), transaction.atomic():
        return BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)).run(batch)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
def test_a_stopped_status_with_a_clock_far_off_still_stops_the_session(stamp, django_capture_on_commit_callbacks):
    make_device("F7")
    session = infusion_start(device_id="F7", order=make_order())
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id="F7"), infusion_id=session.infusion_id, confirmed=True,
                         parameters=None, confirmation={"confirmed": True})  # fmt: skip
    body = {"status": "stopped", "infusionId": session.infusion_id, "timestamp": stamp}
    report = InboundMessage(topic="devices/F7/status", payload=json.dumps(body).encode(),
                            received_at=timezone.now() + timedelta(seconds=1))  # fmt: skip
    ingest([report], django_capture_on_commit_callbacks)
    session = InfusionSession.objects.get(pk=session.pk)
    dead = list(DeadLetter.objects.values_list("reason", "detail"))
    assert session.status == SessionStatus.STOPPED, (
        f"the pump reported it stopped (its clock says {stamp}) but the infusion is still shown {session.status}; "
        f"dead letters: {dead}"
    )
