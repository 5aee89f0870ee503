"""A pump's latest progress is stored once, on the pump; a session sees it only while it is on."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Device, InfusionSession
from devices.states import SessionStatus
from protocol import events
from realtime.sio.snapshot import read_snapshot
from tests.factories import make_device

pytestmark = pytest.mark.django_db
PROGRESS = {"deliveredVolumeMl": 4.0, "progressPercent": 8}


def a_session(device: Device, **fields) -> InfusionSession:
    return InfusionSession.objects.create(device=device, flow_rate_ml_min=1, planned_volume_ml=50, planned_time_min=50,
                                          **fields)  # fmt: skip


def progress_events(device_id: str) -> list[dict]:
    return [
        change.body["progress"] for change in read_snapshot(device_id).changes if change.event == events.DEVICE_PROGRESS
    ]


def test_a_session_sees_the_pumps_progress_only_from_its_start() -> None:
    started = timezone.now()
    device = make_device("ONE_PLACE", latest_progress=PROGRESS, latest_progress_at=started - timedelta(seconds=5))
    session = a_session(device, status=SessionStatus.RUNNING, created_at=started)
    assert session.progress() is None, "progress from before the session began was shown as the session's"
    assert progress_events("ONE_PLACE") == [], "the snapshot showed an earlier report as this session's progress"
    Device.objects.filter(pk=device.pk).update(latest_progress_at=started + timedelta(seconds=1))
    assert InfusionSession.objects.get(pk=session.pk).progress() == PROGRESS
    assert [body["infusionId"] for body in progress_events("ONE_PLACE")] == [session.infusion_id]


def test_without_a_session_the_snapshot_shows_only_progress_after_the_last_session_ended() -> None:
    ended = timezone.now()
    device = make_device("ONE_ENDED", latest_progress=PROGRESS, latest_progress_at=ended - timedelta(seconds=1))
    session = a_session(device, status=SessionStatus.COMPLETED, created_at=ended - timedelta(minutes=5), ended_at=ended)
    assert session.progress() == PROGRESS, "an ended session lost its last progress"
    assert progress_events("ONE_ENDED") == [], "the ended session's last progress was shown as the pump's own"
    Device.objects.filter(pk=device.pk).update(latest_progress_at=ended + timedelta(seconds=1))
    assert InfusionSession.objects.get(pk=session.pk).progress() is None, "progress after the end joined the session"
    assert [body["infusionId"] for body in progress_events("ONE_ENDED")] == [None]
