"""A pump last heard while the bridge's clock ran ahead (an NTP step the wrong way, a VM restored with its host's
clock ahead), silent before or as the clock is put right, is never heard again: `heard.heard_at` replaces a moment
still to come only when another message arrives. Review 29: its `last_seen_at` and `latest_progress_at` (and its
running session's `status_changed_at`) stayed an hour ahead, so it read online and its running infusion was never
judged silent until the wrong clock's moment came. Housekeeping brings such moments back to now
(`Housekeeping.heard_ahead_pull_back`): silence is measured from the correction at the latest.

Each report goes through the bridge's batch ingest (`tests/support/ingest.py`); the judgements are housekeeping's own.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from devices.housekeeping_selectors import devices_silent_unalarmed
from devices.models import Alarm, Device, InfusionSession
from devices.services.heard import AHEAD_TOLERANCE_S
from devices.states import Connectivity
from realtime.bridge.housekeeping import Housekeeping
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

CONNECTED_LONG_AGO = timezone.now() - timedelta(hours=1)


def progress(infusion_id: str, delivered_ml: float) -> dict:
    return {"status": "running", "infusionId": infusion_id, "flowRate": 2.0, "deliveredVolumeMl": delivered_ml,
            "volumeRemainingMl": 30.0 - delivered_ml}  # fmt: skip


def heard_an_hour_ahead(device_id: str, capture) -> InfusionSession:
    """A running order whose pump's status and progress were received with the bridge's clock an hour ahead."""
    make_device(device_id)  # no presence: its connectivity is its last heard against the heartbeat
    session = confirmed_order(device_id)
    ahead = timezone.now() + timedelta(hours=1)
    ingest([report(device_id, "status", {"status": "running", "infusionId": session.infusion_id}, at=ahead)], capture)
    ingest([report(device_id, "progress", progress(session.infusion_id, 1.0), at=ahead + timedelta(seconds=1))],
           capture)  # fmt: skip
    return session


def test_a_pump_last_heard_while_the_clock_ran_ahead_turns_silent_once_it_is_put_right(
    django_capture_on_commit_callbacks,
):
    heard_an_hour_ahead("AHEAD_SILENT", django_capture_on_commit_callbacks)
    # the clock is put right; the pump (its battery out) is never heard again; housekeeping ticks (every 500 ms)
    Housekeeping().tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
    silent = timezone.now() + timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    device = Device.objects.get(device_id="AHEAD_SILENT")
    shown, judged_silent = (
        device.connectivity(now=silent),
        "AHEAD_SILENT" in devices_silent_unalarmed(now=silent, limit=10),
    )
    assert shown == Connectivity.STALE and judged_silent, (
        f"unheard for over a heartbeat, the pump reads {shown} and its running infusion is judged silent: "
        f"{judged_silent} (last heard {device.last_seen_at}, latest progress {device.latest_progress_at}: "
        f"{(device.latest_progress_at - silent).total_seconds():.0f} s still to come)"
    )
    Housekeeping().tick(silent, connected_since=CONNECTED_LONG_AGO)
    lost = Alarm.objects.filter(device__device_id="AHEAD_SILENT", type="communication_lost")
    assert list(lost.values_list("state", flat=True)) == ["active"], "its silence is alarmed a heartbeat later"


def test_the_running_infusions_progress_stays_shown_once_its_moments_are_brought_back(
    django_capture_on_commit_callbacks,
):
    """The session's copy of the pump's progress moment (`prior_progress_at`: whose progress it is) moves with it:
    the progress received while the clock ran ahead stays this infusion's, and so does the next, received after the
    clock was put right (stamped earlier than the wrong clock's moments)."""
    capture = django_capture_on_commit_callbacks
    session = heard_an_hour_ahead("AHEAD_SHOWN", capture)
    ahead = timezone.now() + timedelta(hours=1)
    InfusionSession.objects.filter(pk=session.pk).update(prior_progress_at=ahead - timedelta(seconds=5))
    Housekeeping().tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
    session.refresh_from_db()
    assert session.progress() is not None and session.progress()["deliveredVolumeMl"] == 1.0, (
        "the infusion's progress received while the clock ran ahead is no longer shown as its own once brought back"
    )
    ingest([report("AHEAD_SHOWN", "progress", progress(session.infusion_id, 1.5))], capture)
    session.refresh_from_db()
    assert session.progress() is not None and session.progress()["deliveredVolumeMl"] == 1.5, (
        f"the progress received after the clock was put right is not shown as the infusion's own "
        f"(prior_progress_at {session.prior_progress_at}, latest {session.device.latest_progress_at})"
    )


def test_a_moment_a_little_ahead_is_left_alone(django_capture_on_commit_callbacks):
    """Another bridge's clock a little ahead of the one running housekeeping (NTP keeps hosts within milliseconds):
    nothing is written."""
    make_device("LITTLE_AHEAD")
    little = timezone.now() + timedelta(seconds=AHEAD_TOLERANCE_S / 2)
    Device.objects.filter(device_id="LITTLE_AHEAD").update(last_seen_at=little, latest_progress_at=little)
    Housekeeping().tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
    device = Device.objects.get(device_id="LITTLE_AHEAD")
    assert (device.last_seen_at, device.latest_progress_at) == (little, little)
