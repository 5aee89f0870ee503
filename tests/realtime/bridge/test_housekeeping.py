"""Unit tests: housekeeping works off a mass event a bounded number of pumps per tick, never the same twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from devices.states import SessionStatus
from realtime.bridge.housekeeping import PER_TICK, Housekeeping
from tests.factories import make_ward

pytestmark = pytest.mark.django_db


def silent_running_pumps(count: int, *, silent_for_s: float) -> None:
    ward, heard = make_ward(), timezone.now() - timedelta(seconds=silent_for_s)
    devices = Device.objects.bulk_create(
        Device(device_id=f"P{index:04d}", ward=ward, last_seen_at=heard, latest_progress_at=heard)
        for index in range(count)
    )
    InfusionSession.objects.bulk_create(
        InfusionSession(device=device, status=SessionStatus.RUNNING, flow_rate_ml_min=1, planned_volume_ml=10,
                        planned_time_min=10, status_changed_at=heard, created_at=heard)
        for device in devices
    )  # fmt: skip


def test_a_ward_falling_silent_is_alarmed_over_a_few_ticks(settings):
    silent_running_pumps(PER_TICK + 30, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    housekeeping, now = Housekeeping(), timezone.now()
    housekeeping.silent_sessions(now)
    assert Alarm.objects.filter(type="communication_lost").count() == PER_TICK, "one tick handles PER_TICK pumps"
    housekeeping.silent_sessions(now)
    alarms = Alarm.objects.filter(type="communication_lost")
    assert alarms.count() == PER_TICK + 30, "the next tick handles the rest, not the already alarmed again"
    assert all(alarm.count == 1 for alarm in alarms), "no pump is alarmed twice"


def test_pumps_turning_stale_are_announced_once_each_over_a_few_ticks(settings):
    silent_running_pumps(PER_TICK + 30, silent_for_s=1)
    housekeeping = Housekeeping()
    housekeeping.stale_pumps(timezone.now())  # at start: only remembers
    later = timezone.now() + timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    seq_before = sum(Device.objects.values_list("event_seq", flat=True))
    housekeeping.stale_pumps(later)
    housekeeping.stale_pumps(later)
    housekeeping.stale_pumps(later)
    announced = sum(Device.objects.values_list("event_seq", flat=True)) - seq_before
    assert announced == PER_TICK + 30, f"each stale pump's device:status once, got {announced}"
