"""A wall clock stepped (a wrong NTP source, an RTC read wrong at boot, then put right) must not hold the checks that
judge what was not heard for as long as it was wrong. Review 29: the stall hold (`worker.Bridge.note_stall`) read one
turn with the wall clock an hour ahead as a stall, and kept the moment it noted on that wrong clock; once the clock
was put right the hold's end lay an hour away, and no pump was judged silent, no start timed out, no unverified start
told for that hour, whatever the pumps did. The reconnect grace, measured from the link's connection on the wall
clock, held as long after a reconnection while the clock ran ahead.

Driven with the bridge's own objects as `test_silence_after_a_stall.py` drives them: the monotonic clock goes on a
turn at a time, never jumping; only the wall clock is stepped.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm
from realtime.bridge.worker import Bridge
from tests.factories import make_device, make_ward
from tests.support.ingest import confirmed_order, ingest, report
from tests.support.worker_clocks import WorkerClocks

pytestmark = pytest.mark.django_db

GRACE_S = 2.0
HEARTBEAT_S = 10.0
TURN_S = 0.5
HOUR_S = 3600.0


@pytest.fixture
def silent_pump(settings, django_capture_on_commit_callbacks) -> str:
    """A running pump heard once, then never again."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": HEARTBEAT_S, "RECONNECT_GRACE_S": GRACE_S}
    make_device("STEP_SILENT", ward=make_ward("step"), has_presence=True, last_seen_at=timezone.now())
    infusion_id = confirmed_order("STEP_SILENT").infusion_id
    body = {"status": "running", "infusionId": infusion_id, "flowRate": 2.0, "deliveredVolumeMl": 6.0,
            "volumeRemainingMl": 24.0, "timeRemainingMin": 12.0, "progressPercent": 20}  # fmt: skip
    ingest([report("STEP_SILENT", "progress", body)], django_capture_on_commit_callbacks)
    return "STEP_SILENT"


def lost(device_id: str) -> list[str]:
    alarms = Alarm.objects.filter(device__device_id=device_id, type="communication_lost")
    return list(alarms.values_list("state", flat=True))


def turns_until_alarmed(bridge: Bridge, clocks: WorkerClocks, device_id: str, wall_steps: dict[int, float]) -> float:
    """Turn the bridge every TURN_S of real time (the wall clock stepped to `wall_steps[turn]` at those turns) until
    the pump is alarmed, or well past its heartbeat and the grace after the last step; how long that took."""
    last_step_s = max(wall_steps, default=0) * TURN_S
    turn = 0
    while not lost(device_id) and clocks.mono_s < max(HEARTBEAT_S, last_step_s) + GRACE_S + 5.0:
        turn += 1
        clocks.mono_s += TURN_S
        clocks.wall_step_s = wall_steps.get(turn, clocks.wall_step_s)
        bridge.step()
    return clocks.mono_s


def connected_long_since() -> Bridge:
    bridge = Bridge()
    bridge.link.connected_since = timezone.now() - timedelta(hours=1)  # the broker link held long since
    bridge.step()
    return bridge


def test_a_silent_pump_is_alarmed_after_the_wall_clock_stepped_ahead_for_one_turn(clocks, silent_pump):
    bridge = connected_long_since()
    unheard_s = turns_until_alarmed(bridge, clocks, silent_pump, {1: HOUR_S, 2: 0.0})  # put right a turn later
    assert lost(silent_pump) == ["active"], (
        f"a running pump unheard for {unheard_s:.1f} s was not alarmed communication_lost: one turn with the wall "
        "clock an hour ahead held the silence check for the hour"
    )
    assert unheard_s <= HEARTBEAT_S + 2 * TURN_S, f"alarmed {unheard_s:.1f} s after it was last heard"


def test_a_silent_pump_is_alarmed_while_the_wall_clock_steps_ahead_and_back_again_and_again(clocks, silent_pump):
    """A broken NTP source: an hour back, an hour ahead, put right, ahead again, put right; each step ahead reads as
    a stall (a suspended machine's clock is set forward so), so each holds the checks one grace, no more."""
    bridge = connected_long_since()
    steps = {1: -HOUR_S, 2: HOUR_S, 3: 0.0, 6: HOUR_S, 7: 0.0, 9: -HOUR_S, 10: 2 * HOUR_S, 11: 0.0}
    unheard_s = turns_until_alarmed(bridge, clocks, silent_pump, steps)
    assert lost(silent_pump) == ["active"], (
        f"a running pump unheard for {unheard_s:.1f} s was not alarmed communication_lost after the wall clock "
        f"stepped {len(steps)} times, the last {max(steps) * TURN_S:g} s into its silence"
    )
    assert unheard_s <= HEARTBEAT_S + 2 * TURN_S, f"alarmed {unheard_s:.1f} s after it was last heard"


def test_a_silent_pump_is_alarmed_after_a_reconnection_while_the_wall_clock_ran_ahead(clocks, silent_pump):
    """The link reconnected while the wall clock was an hour ahead (its `connected_since` on that clock): once the
    clock is put right the reconnect grace still lasts the grace, not the hour."""
    bridge = connected_long_since()
    clocks.mono_s, clocks.wall_step_s = TURN_S, HOUR_S
    bridge.link.connected_since = clocks.now()  # reconnected on the wrong clock
    bridge.step()
    unheard_s = turns_until_alarmed(bridge, clocks, silent_pump, {1: 0.0})
    assert lost(silent_pump) == ["active"], (
        f"a running pump unheard for {unheard_s:.1f} s was not alarmed communication_lost: the reconnect grace, "
        "begun on a wall clock an hour ahead, held the silence check for the hour"
    )
    assert unheard_s <= HEARTBEAT_S + 2 * TURN_S, f"alarmed {unheard_s:.1f} s after it was last heard"


def test_a_silent_pump_is_alarmed_a_heartbeat_after_the_wall_clock_was_put_back_an_hour(clocks, silent_pump):
    """As if heard while the bridge's clock ran an hour ahead, then put right: its moments of hearing lie an hour
    ahead of the clock. The worker sees the wall clock put back and housekeeping brings them back to now at its next
    tick (`Housekeeping.heard_ahead_pull_back`): the pump is judged silent a heartbeat after the correction."""
    bridge = connected_long_since()
    unheard_s = turns_until_alarmed(bridge, clocks, silent_pump, {1: -HOUR_S})
    assert lost(silent_pump) == ["active"], (
        f"a running pump unheard for {unheard_s:.1f} s was not alarmed communication_lost: its last hearing lies an "
        "hour ahead of the clock put right"
    )
    assert unheard_s <= TURN_S + HEARTBEAT_S + 2 * TURN_S, f"alarmed {unheard_s:.1f} s after the clock was put back"
