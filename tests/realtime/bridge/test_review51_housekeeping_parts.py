"""Review 51 (hostile): housekeeping's round spread over the worker's ticks, a part of the checks a tick
(`check_schedule.PARTS`, fffee375).

- A commit woke every check and each ran at the next tick; spread, only the part whose tick came first ran, the later
  parts' checks only asked whether anything of their kind falls due. The stale check's question does not cover what
  its run does: it forgets the pumps heard again (`Housekeeping.stale_announced`), so a pump heard once after it was
  announced stale, then silent again, was never announced stale again (its screens, which take the server's word for
  a pump whose presence is not vouched for, kept "Online").
- A part ran every `housekeeping_s / PARTS` after the last part, whatever the turn's length: a round took PARTS turns,
  so with turns of 0.3 s (a large batch's commit) each check ran every 1.5 s, not every 0.5 s as before.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import ChangeLogEntry
from protocol import events
from realtime.bridge.check_schedule import PARTS
from realtime.bridge.worker import Bridge
from tests.factories import make_device
from tests.support.ingest import report

pytestmark = pytest.mark.django_db

HEARTBEAT_S = 4.0
TICK_S = 0.1


def turns(bridge: Bridge, clocks, seconds: float) -> None:
    """The worker's outbox ticks, on time, for `seconds` (both clocks on)."""
    for _ in range(round(seconds / TICK_S)):
        clocks.mono_s += TICK_S
        bridge.maybe_tick()


def test_a_pump_heard_again_then_silent_again_is_announced_stale_again(clocks, settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": HEARTBEAT_S}
    make_device("STALE_AGAIN", last_seen_at=timezone.now() - timedelta(hours=1))  # no presence: judged by silence
    bridge = Bridge()
    bridge.link.connected_since = timezone.now() - timedelta(hours=1)
    turns(bridge, clocks, 1.0)  # two rounds: the stale check remembers the pump stale (at start: remembered only)
    clocks.mono_s += TICK_S
    bridge.inbox.put(report("STALE_AGAIN", "status", {"status": "idle"}, at=clocks.now()))
    bridge.step()  # heard again: committed, every check woken
    statuses = ChangeLogEntry.objects.filter(device__device_id="STALE_AGAIN", event=events.DEVICE_STATUS)
    heard = statuses.count()
    turns(bridge, clocks, HEARTBEAT_S + 3)  # silent again, a heartbeat and more
    assert statuses.count() > heard, (
        "a pump heard once after it was announced stale, then silent again for a heartbeat and more, was not "
        "announced stale again (the stale check, asleep, never forgot it was announced)"
    )


def test_every_check_runs_about_every_housekeeping_s_when_the_worker_turns_slowly(monkeypatch):
    from realtime.bridge import worker

    class Checks:
        behind = False

        def __init__(self) -> None:
            self.ran: dict[int, list[float]] = {part: [] for part in range(PARTS)}

        def tick(self, now, *, connected_since, clock=None, part=None, parts=None) -> None:
            ran = [part] if part is not None else parts
            for each in range(PARTS) if ran is None else ran:
                self.ran[each].append(clock)

        def clock_put_back(self, step) -> None:  # the test's monotonic clock runs ahead of the wall clock
            pass

    class Outbox:
        acked = worker.queue.SimpleQueue()

        def tick(self, now) -> None:
            pass

    clock = [0.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock[0])
    bridge = worker.Bridge()
    bridge.housekeeping, bridge.outbox = Checks(), Outbox()
    bridge._next_heartbeat, bridge._heartbeat_connected_since = float("inf"), bridge.link.connected_since
    turn_s = 0.3  # each turn's batches took this long (a large batch committed on a loaded machine)
    for turn in range(1, 31):
        clock[0] = 100.0 + turn * turn_s
        bridge.maybe_tick()
    most = bridge.limits.housekeeping_s + turn_s
    for part, clocks in bridge.housekeeping.ran.items():
        gaps = [round(later - earlier, 3) for earlier, later in zip(clocks, clocks[1:], strict=False)]
        assert gaps and max(gaps) <= most, (
            f"the checks of part {part} ran {gaps} s apart with turns of {turn_s} s: a round every "
            f"{bridge.limits.housekeeping_s} s (and a turn) no more"
        )


def test_a_check_put_to_sleep_while_the_clock_ran_ahead_is_asked_again_once_it_is_put_back():
    """Review 51 (minor): a check asleep on a wall clock an hour ahead slept until that clock's moment, an hour after
    the clock was put right, unless a commit woke it (an idle bridge commits nothing: a start overdue meanwhile waited
    the hour). Put back, every check asks again at the next tick."""
    from realtime.bridge.housekeeping import Housekeeping

    due, ran = [False], []
    keeper = Housekeeping()
    keeper.checks = {"reminders": (lambda now: ran.append(now) or False, lambda moment: due[0], lambda: [60.0])}
    ahead = timezone.now() + timedelta(hours=1)
    keeper.tick(ahead, connected_since=ahead - timedelta(hours=1), clock=0.0)  # after a commit: it runs
    keeper.tick(ahead + timedelta(seconds=0.5), connected_since=ahead - timedelta(hours=1), clock=0.5)
    assert keeper.asleep_until["reminders"] > ahead, "the check should sleep: nothing of its kind was due"
    keeper.clock_put_back(timedelta(hours=1))
    due[0], now = True, timezone.now()
    keeper.tick(now, connected_since=ahead - timedelta(hours=1), clock=1.0)
    assert ran[-1] == now, "a check put to sleep on the clock ahead slept on after the clock was put back"
