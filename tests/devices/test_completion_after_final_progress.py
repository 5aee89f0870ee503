"""The pump's completion (its summary) is kept with the infusion its final progress already completed (review 19).

Progress saying `completed` completes the infusion on the pump (2f319cb), and both firmwares send the completion just
after it: the completion then found no infusion on the pump and its summary (total volume, times) was dropped; three
simulator tests of the fresh-clone CI (ci37) saw `completion` None on a completed session.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import InfusionSession
from devices.states import SessionStatus
from protocol import events
from tests.factories import make_device
from tests.support.ingest import confirmed_order, send

pytestmark = pytest.mark.django_db

SUMMARY = {"totalVolumeMl": 30.0, "durationMin": 15.0}


def test_a_completion_after_the_final_progress_keeps_its_summary(django_capture_on_commit_callbacks, emitted):
    capture = django_capture_on_commit_callbacks
    make_device("DONE", has_presence=True)
    session = confirmed_order("DONE")
    ids = {"infusionId": session.infusion_id}
    send(capture, "DONE", "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 29.0, **ids})
    send(capture, "DONE", "progress", {"status": "completed", "deliveredVolumeMl": 30.0, "progressPercent": 100, **ids},
         1)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.COMPLETED
    send(capture, "DONE", "completion", {"completed": True, "summary": SUMMARY, **ids}, 2)
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED and session.completion["summary"] == SUMMARY
    told = [c.body for c in emitted if c.event == events.DEVICE_INFUSION_COMPLETED]
    assert told and told[-1]["completion"]["summary"] == SUMMARY, told


def test_the_original_firmwares_completion_naming_no_infusion_goes_to_the_one_just_completed(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device("DONE", has_presence=True)
    session = confirmed_order("DONE")
    send(capture, "DONE", "progress", {"status": "completed", "deliveredVolumeMl": 30.0, "progressPercent": 100})
    send(capture, "DONE", "completion", {"completed": True, "summary": SUMMARY}, 1)
    session.refresh_from_db()
    assert session.completion["summary"] == SUMMARY


def test_a_completion_long_after_the_infusion_ended_is_not_taken_for_its_summary(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("DONE", has_presence=True)
    session = confirmed_order("DONE")
    send(capture, "DONE", "progress", {"status": "completed", "deliveredVolumeMl": 30.0, "progressPercent": 100})
    InfusionSession.objects.filter(pk=session.pk).update(status_changed_at=timezone.now() - timedelta(hours=2))
    send(capture, "DONE", "completion", {"completed": True, "summary": SUMMARY}, 1)
    session.refresh_from_db()
    assert session.completion is None, "a pump's completion two hours later is about another infusion (its own)"
