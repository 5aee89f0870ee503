"""The original firmware's uptime is ESP32 millis(): 32 bits, it wraps after 49.7 days. The wrap was taken for a
restart (a reviewer's finding): the running order was interrupted and the pump then showed as infusing WITHOUT an
order. A real restart (uptime back to a value that does not continue it) is still one."""

import pytest

from devices.models import Alarm, InfusionSession
from devices.states import AlarmState, SessionStatus
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db
WRAP = 2**32


def legacy_progress(uptime_ms, delivered, at_s):
    return report(
        "F4",
        "progress",
        {
            "timeRemainingMin": 10,
            "volumeRemainingMl": 30 - delivered,
            "timestamp": uptime_ms,
            "deliveredVolumeMl": delivered,
            "progressPercent": delivered / 0.3,
            "flowRate": 2.0,
            "status": "running",
        },
        at_s,
    )


def test_the_uptime_counter_wrapping_is_not_a_restart(django_capture_on_commit_callbacks):
    make_device("F4")
    session = confirmed_order("F4")
    # 49.7 days after power-on the pump is infusing; one second later its millis() has wrapped to ~0
    ingest([legacy_progress(WRAP - 600, 5.0, 0)], django_capture_on_commit_callbacks)
    ingest([legacy_progress(400, 5.03, 1)], django_capture_on_commit_callbacks)
    ingest([legacy_progress(1400, 5.06, 2)], django_capture_on_commit_callbacks)
    session = InfusionSession.objects.get(pk=session.pk)
    alarms = sorted(
        Alarm.objects.filter(device__device_id="F4", state=AlarmState.ACTIVE).values_list("type", flat=True)
    )
    assert session.status == SessionStatus.RUNNING and not {"infusion_interrupted", "infusing_without_order"} & set(
        alarms
    ), (
        f"a pump infusing without pause was taken for restarted when its 32-bit uptime wrapped: the order is "
        f"{session.status} ({session.status_reason!r}) and the active alarms are {alarms}"
    )


def test_uptime_going_back_without_wrapping_is_still_a_restart(django_capture_on_commit_callbacks):
    make_device("F4")
    session = confirmed_order("F4")
    ingest([legacy_progress(3_600_000, 5.0, 0)], django_capture_on_commit_callbacks)
    ingest([legacy_progress(4_500, 5.03, 1)], django_capture_on_commit_callbacks)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def legacy_status(status, uptime_ms, at_s):
    return report("F4", "status", {"deviceId": "F4", "status": status, "timestamp": uptime_ms}, at_s)


def test_a_pause_across_the_uptime_wrap_is_not_a_restart(django_capture_on_commit_callbacks):
    """Review 2: the firmware publishes nothing while paused; 30 minutes passed and millis() wrapped meanwhile."""
    make_device("F4")
    session = confirmed_order("F4")
    paused_at = WRAP - 120_000  # two minutes before the wrap
    ingest([legacy_progress(paused_at - 1000, 5.0, 0)], django_capture_on_commit_callbacks)
    ingest([legacy_status("paused", paused_at, 1)], django_capture_on_commit_callbacks)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED
    resumed_at = paused_at + 1_800_000 - WRAP
    ingest([legacy_status("running", resumed_at, 1801)], django_capture_on_commit_callbacks)
    ingest([legacy_progress(resumed_at + 1000, 5.03, 1802)], django_capture_on_commit_callbacks)
    session = InfusionSession.objects.get(pk=session.pk)
    alarms = sorted(
        Alarm.objects.filter(device__device_id="F4", state=AlarmState.ACTIVE).values_list("type", flat=True)
    )
    assert session.status == SessionStatus.RUNNING and not {"infusion_interrupted", "infusing_without_order"} & set(
        alarms
    ), (
        f"a pump resumed after a 30-minute pause across its uptime wrap was taken for restarted: the order is "
        f"{session.status} ({session.status_reason!r}), active alarms {alarms}"
    )


def test_a_reboot_near_the_uptime_wrap_is_still_a_restart(django_capture_on_commit_callbacks):
    """Uptime 4.5 s five minutes after a report at 2^32 - 0.6 s: wrapped, it would read about 299 s."""
    make_device("F4")
    session = confirmed_order("F4")
    ingest([legacy_progress(WRAP - 600, 5.0, 0)], django_capture_on_commit_callbacks)
    ingest([legacy_progress(4_500, 5.03, 300)], django_capture_on_commit_callbacks)  # its `test` message was lost
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.INTERRUPTED, (
        f"a pump whose uptime restarted near its wrap (not matching the 300 s that passed) was not taken for "
        f"restarted: the order is {session.status}"
    )


def test_a_reboot_within_the_wrap_tolerance_is_told_by_its_test_message(django_capture_on_commit_callbacks):
    """A reboot whose new uptime happens to continue the wrapped one: the post-boot `test` message tells it."""
    make_device("F4")
    session = confirmed_order("F4")
    ingest([legacy_progress(WRAP - 600, 5.0, 0)], django_capture_on_commit_callbacks)
    ingest([report("F4", "test", {"test": "ESP32 MQTT working", "timestamp": 4210}, 5)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.INTERRUPTED, (
        f"a pump rebooted near its uptime wrap was not taken for restarted by its post-boot test message: "
        f"the order is {session.status}"
    )
