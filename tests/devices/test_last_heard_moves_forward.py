"""A pump's "last heard" (`last_seen_at`) is the server's receive time of its newest message, and only moves forward.

A message applied after one the server received later (its receive time the earlier) used to set `last_seen_at` back
to its own receive time, on both roads (`pumps._pump_seen`, the bulk progress path's `_pump_heard`): the pump then read
quieter than it was. The pump's own clock never counts (a `timestamp` in the future changes nothing), and a stored
moment still to come on the server's clock (one that ran ahead) is replaced by the receive time, so a pump that goes
quiet turns stale a heartbeat timeout after the last message really received, never later.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from devices.models import Device
from devices.services.heard import heard_at
from devices.states import Connectivity
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

PROGRESS = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 10.0, "volumeRemainingMl": 20.0}


def heartbeat() -> timedelta:
    return timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])


def test_a_late_alarm_does_not_move_last_heard_back(django_capture_on_commit_callbacks):
    make_device("HEARD_1")
    heard = timezone.now() - timedelta(minutes=1)
    ingest([report("HEARD_1", "status", {"status": "healthy"}, at=heard)], django_capture_on_commit_callbacks)
    late = report("HEARD_1", "error", {"type": "occlusion", "severity": "high"}, at=heard - timedelta(seconds=5))
    ingest([late], django_capture_on_commit_callbacks)
    last_seen_at = Device.objects.get(device_id="HEARD_1").last_seen_at
    assert last_seen_at == heard, (
        f"an alarm received 5 s before the status applied before it moved last heard back to {last_seen_at}, "
        f"from {heard}"
    )


def test_late_routine_progress_does_not_move_last_heard_back(django_capture_on_commit_callbacks):
    make_device("HEARD_2")
    session = confirmed_order("HEARD_2")
    heard = timezone.now() - timedelta(minutes=1)
    running = {**PROGRESS, "infusionId": session.infusion_id}
    ingest([report("HEARD_2", "status", {"status": "running", "infusionId": session.infusion_id}, at=heard)],
           django_capture_on_commit_callbacks)  # fmt: skip
    late = report("HEARD_2", "progress", running, at=heard - timedelta(seconds=5))  # routine: the bulk path
    ingest([late], django_capture_on_commit_callbacks)
    last_seen_at = Device.objects.get(device_id="HEARD_2").last_seen_at
    assert last_seen_at == heard, f"progress received earlier moved last heard back to {last_seen_at}, from {heard}"


def test_a_pump_clock_in_the_future_does_not_keep_a_silent_pump_alive(django_capture_on_commit_callbacks):
    make_device("HEARD_3")
    heard = timezone.now() - timedelta(minutes=1)
    ahead = (heard + timedelta(hours=1)).isoformat()
    ingest([report("HEARD_3", "status", {"status": "healthy", "timestamp": ahead}, at=heard)],
           django_capture_on_commit_callbacks)  # fmt: skip
    device = Device.objects.get(device_id="HEARD_3")
    assert device.last_seen_at == heard, f"last heard is the server's receive time, not the pump's {ahead}"
    silent = heard + heartbeat() + timedelta(seconds=1)
    assert device.connectivity(now=silent) == Connectivity.STALE, "a pump quiet past its heartbeat is stale"


def test_a_stored_moment_still_to_come_is_replaced_by_the_receive_time(django_capture_on_commit_callbacks):
    ahead = timezone.now() + timedelta(hours=1)  # written while the server's clock ran an hour ahead
    make_device("HEARD_4", last_seen_at=ahead)
    heard = timezone.now()
    ingest([report("HEARD_4", "status", {"status": "healthy"}, at=heard)], django_capture_on_commit_callbacks)
    device = Device.objects.get(device_id="HEARD_4")
    assert device.last_seen_at == heard, f"last heard kept a moment still to come: {device.last_seen_at}"
    silent = heard + heartbeat() + timedelta(seconds=1)
    assert device.connectivity(now=silent) == Connectivity.STALE, (
        "a pump quiet past its heartbeat looked alive until the wrong clock's moment"
    )


def test_heard_at_takes_the_later_moment_but_never_one_still_to_come():
    now = timezone.now()
    earlier, later = now - timedelta(seconds=10), now - timedelta(seconds=5)
    assert heard_at(stored=None, received_at=earlier, now=now) == earlier
    assert heard_at(stored=earlier, received_at=later, now=now) == later
    assert heard_at(stored=later, received_at=earlier, now=now) == later, "moved back"
    assert heard_at(stored=now + timedelta(seconds=1), received_at=earlier, now=now) == earlier, "kept the future"


def test_a_last_will_is_not_the_pump_heard(django_capture_on_commit_callbacks):
    """Review 28: the broker's Last Will for a pump silent 51 s moved last heard to its own receive time, and the
    overview read "Offline · Last heard 0 s ago": the silence in which an infusion may have stopped was hidden."""
    make_device("HEARD_WILL", has_presence=True)
    spoke = timezone.now() - timedelta(seconds=51)
    status = {"status": "online", "batteryLevel": 80, "seq": 7, "bootId": "b1"}
    ingest([report("HEARD_WILL", "status", status, at=spoke)], django_capture_on_commit_callbacks)
    will = report("HEARD_WILL", "status", {"status": "offline", "bootId": "b1"})
    ingest([will], django_capture_on_commit_callbacks)
    device = Device.objects.get(device_id="HEARD_WILL")
    assert device.presence == "offline"
    assert device.last_seen_at == spoke, f"last heard {device.last_seen_at}, the pump last spoke at {spoke}"
