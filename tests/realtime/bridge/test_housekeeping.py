"""Unit tests: housekeeping works off a mass event a bounded number of pumps per tick, never the same twice;
sleeps while nothing can fall due (webhook outcomes: `test_webhook_outcomes.py`)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Command, Device, InfusionSession
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.pumps import pump_mark_stale
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource, CommandKind, SessionStatus
from realtime.bridge.check_schedule import PARTS, CheckSchedule, part_checks
from realtime.bridge.housekeeping import PER_TICK, Housekeeping
from tests.factories import make_device, make_order, make_ward

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
    silent_running_pumps(PER_TICK + PER_TICK // 2, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    housekeeping, now = Housekeeping(), timezone.now()
    housekeeping.silent_sessions(now)
    assert Alarm.objects.filter(type="communication_lost").count() == PER_TICK, "one tick handles PER_TICK pumps"
    housekeeping.silent_sessions(now)
    alarms = Alarm.objects.filter(type="communication_lost")
    assert alarms.count() == PER_TICK + PER_TICK // 2, "the next tick handles the rest, not the already alarmed again"
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


# An idle bridge's housekeeping sleeps until something can fall due (issue 17's idle target), never later.

CONNECTED_LONG_AGO = timezone.now() - timedelta(hours=1)


def idle_ticks(housekeeping: Housekeeping, start, *seconds: float) -> None:
    for offset in seconds:
        housekeeping.tick(start + timedelta(seconds=offset), connected_since=CONNECTED_LONG_AGO)


def test_an_idle_bridges_checks_ask_nothing_while_nothing_can_fall_due(settings, django_assert_num_queries):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": 10.0}
    housekeeping, start = Housekeeping(), timezone.now()
    idle_ticks(housekeeping, start, 0.0, 0.5)  # the first runs every check; the second asks what falls due
    with django_assert_num_queries(5):  # every check asleep: the change log's newest id only; at 4.5 the evidence
        idle_ticks(housekeeping, start, 1.0, 1.5, 2.0, 4.5)  # grace's check (5 s: asleep for 2.5) looks ahead
    with django_assert_num_queries(5):  # that id; the silence check looks ahead (running orders, then pumps
        idle_ticks(housekeeping, start, 5.6)  # infusing with none), the stale check; the prune (every 5 s)


def test_a_pump_falling_silent_while_housekeeping_sleeps_is_alarmed_on_the_first_tick_after_its_deadline(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": 10.0}
    silent_running_pumps(1, silent_for_s=4.0)  # silent at start + 6 s
    housekeeping, start = Housekeeping(), timezone.now()
    idle_ticks(housekeeping, start, 0.0, 0.5, 5.6)  # asleep from 0.5 to 5.5; from 5.6 it sees the deadline
    assert not Alarm.objects.filter(type="communication_lost").exists()
    idle_ticks(housekeeping, start, 6.1)
    assert Alarm.objects.filter(type="communication_lost").count() == 1, "alarmed on the first tick after 6 s"


def test_a_commit_wakes_every_check(settings):
    """A message heard a while ago may bring an older moment than any check slept for: a commit wakes them."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": 10.0}
    housekeeping, start = Housekeeping(), timezone.now()
    idle_ticks(housekeeping, start, 0.0, 0.5)
    silent_running_pumps(1, silent_for_s=30.0)  # committed meanwhile, already past its heartbeat
    idle_ticks(housekeeping, start, 1.0)
    assert not Alarm.objects.filter(type="communication_lost").exists(), "asleep: nothing this bridge committed"
    housekeeping.committed = True  # what the worker says after each commit
    idle_ticks(housekeeping, start, 1.5)
    assert Alarm.objects.filter(type="communication_lost").count() == 1


def test_a_change_committed_by_another_process_wakes_every_check(settings):
    """A page resolving the alarm of a pump still silent commits a change: the silence check must not sleep on."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": 10.0}
    housekeeping, start = Housekeeping(), timezone.now()
    idle_ticks(housekeeping, start, 0.0, 0.5)
    silent_running_pumps(1, silent_for_s=30.0)  # as a resolved alarm leaves it: silent, no active alarm
    idle_ticks(housekeeping, start, 1.0)
    assert not Alarm.objects.filter(type="communication_lost").exists(), "asleep: no change committed yet"
    make_device("PUMP_OTHER", ward=Device.objects.get(device_id="P0000").ward)
    pump_mark_stale(device_id="PUMP_OTHER", now=start)  # a change of a pump, committed by any process
    idle_ticks(housekeeping, start, 1.5)
    assert Alarm.objects.filter(type="communication_lost").count() == 1, "not alarmed on the tick after the change"


def test_a_pump_infusing_without_an_order_that_falls_silent_is_alarmed(settings):
    """A reviewer's suspicion, confirmed: a pump infusing with no order on record (heard only by its presence)
    that stops sending progress raised no `communication_lost`: its screen kept a frozen rate, looking healthy."""
    timeout = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"]
    now = timezone.now()
    heard = now - timedelta(seconds=timeout + 5)
    make_device("UNORDERED", ward=make_ward(), pump_state="running", latest_progress_at=heard, last_seen_at=now)
    make_device("UNORDERED_FRESH", ward=make_ward("fresh"), pump_state="running", latest_progress_at=now)
    for device_id in ("UNORDERED", "UNORDERED_FRESH"):
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id=device_id), type="infusing_without_order", now=heard,
                        priority=AlarmPriority.HIGH, source=AlarmSource.SERVER)  # fmt: skip
    Housekeeping().silent_sessions(now)
    lost = Alarm.objects.filter(type="communication_lost", state="active")
    assert list(lost.values_list("device__device_id", flat=True)) == ["UNORDERED"]
    Housekeeping().silent_sessions(now + timedelta(seconds=1))
    assert lost.get().count == 1, "alarmed once per silence"


# A start times out only on what the bridge could have heard: not while it holds no broker link, nor within the
# reconnect grace (the pump's confirmation may be queued at the broker), nor while the pump's messages wait unapplied.


def overdue_start(settings, device_id: str) -> InfusionSession:
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    InfusionSession.objects.filter(pk=session.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.PUMPSTREAM["CONFIRMATION_TIMEOUT_S"] + 5)
    )
    return session


def status_of(session: InfusionSession) -> str:
    return InfusionSession.objects.get(pk=session.pk).status


@pytest.mark.parametrize("connected_for_s", [None, 1.0])
def test_a_start_does_not_time_out_while_the_broker_link_is_down_or_within_the_grace(settings, connected_for_s):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "RECONNECT_GRACE_S": 15.0}
    session, now = overdue_start(settings, "T1"), timezone.now()
    since = None if connected_for_s is None else now - timedelta(seconds=connected_for_s)
    Housekeeping().tick(now, connected_since=since)
    assert status_of(session) == SessionStatus.PENDING, (
        f"the start timed out (and a STOP was queued) while the bridge could not hear the pump (link since {since})"
    )
    assert not Command.objects.filter(kind=CommandKind.STOP_INFUSION).exists()
    Housekeeping().tick(now, connected_since=CONNECTED_LONG_AGO)
    assert status_of(session) == SessionStatus.TIMED_OUT, "once the link is settled, an unconfirmed start times out"


def test_a_start_whose_pumps_messages_wait_in_the_bridge_is_judged_as_of_their_arrival(settings):
    session, now = overdue_start(settings, "T2"), timezone.now()
    housekeeping = Housekeeping()
    created = InfusionSession.objects.get(pk=session.pk).created_at
    housekeeping.waiting_since = lambda device_id: created + timedelta(seconds=1) if device_id == "T2" else None
    housekeeping.confirmation_timeouts(now)
    assert status_of(session) == SessionStatus.PENDING, "its confirmation may be among the messages not yet applied"
    housekeeping.waiting_since = lambda device_id: None
    housekeeping.confirmation_timeouts(now)
    assert status_of(session) == SessionStatus.TIMED_OUT


def test_a_silent_pump_is_alarmed_however_many_older_silent_pumps_are_held(settings):
    """As for starts: the 100 longest-silent pumps were read each tick; while they were held (a slot not settled,
    their messages waiting in the bridge), a pump falling silent after them was never alarmed `communication_lost`."""
    silent_running_pumps(PER_TICK + 1, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 60)
    make_device("SILENT_FREE", ward=Device.objects.get(device_id="P0000").ward)
    heard = timezone.now() - timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    Device.objects.filter(device_id="SILENT_FREE").update(last_seen_at=heard, latest_progress_at=heard)
    InfusionSession.objects.create(device=Device.objects.get(device_id="SILENT_FREE"), status=SessionStatus.RUNNING,
                                   flow_rate_ml_min=1, planned_volume_ml=10, planned_time_min=10,
                                   status_changed_at=heard, created_at=heard)  # fmt: skip
    housekeeping, now = Housekeeping(), timezone.now()
    long_ago = now - timedelta(hours=1)  # the held pumps' oldest waiting message: judged as of then, not silent
    housekeeping.waiting_since = lambda device_id: long_ago if device_id != "SILENT_FREE" else None
    for tick in range(5):
        housekeeping.silent_sessions(now + timedelta(seconds=tick / 2))
    alarmed = list(Alarm.objects.filter(type="communication_lost").values_list("device__device_id", flat=True))
    assert alarmed == ["SILENT_FREE"], (
        f"after 5 ticks the pump silent for {settings.PUMPSTREAM['HEARTBEAT_TIMEOUT_S'] + 5:.0f} s while infusing "
        f"was not alarmed behind {PER_TICK + 1} longer-silent held pumps (alarmed: {alarmed})"
    )


def test_a_check_that_fails_every_tick_does_not_stop_the_checks_after_it(settings, monkeypatch):
    """One check's own fault (an overdue command the code cannot end, read first every tick) ended the whole tick:
    the checks after it never ran, so a pump falling silent was never alarmed `communication_lost`."""
    silent_running_pumps(1, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)

    def commands_end_overdue(**kwargs) -> int:
        raise ValueError("a command row the code cannot end")

    monkeypatch.setattr("realtime.bridge.housekeeping.commands_end_overdue", commands_end_overdue)
    housekeeping = Housekeeping()
    for _ in range(3):
        housekeeping.tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
    alarmed = Alarm.objects.filter(type="communication_lost").count()
    assert alarmed == 1, "a silent pump must be alarmed whatever fault another check has"


# A ward switch fails: every infusing pump silent at once. All in one tick held the bridge's one database thread
# 4.0 s for 1,000 pumps, 100 a tick 0.4-0.5 s each (bench/silence_storm.py, SQLite): every pump's messages, other
# pumps' alarms too, waited behind it. A tick now does at most PER_TICK of each check and says it is behind.


def test_a_ward_falling_silent_at_once_is_alarmed_a_short_page_a_tick_within_a_bounded_number_of_ticks(settings):
    assert PER_TICK <= 25, "4-5 ms of work per alarm on SQLite: a page of PER_TICK must stay near 100 ms"
    count = 3 * PER_TICK + 5
    silent_running_pumps(count, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    housekeeping, alarmed, behind = Housekeeping(), [], []
    for _ in range(5):
        before = Alarm.objects.filter(type="communication_lost").count()
        housekeeping.tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
        alarmed.append(Alarm.objects.filter(type="communication_lost").count() - before)
        behind.append(housekeeping.behind)
    assert alarmed == [PER_TICK, PER_TICK, PER_TICK, 5, 0], f"alarms raised per tick: {alarmed}"
    assert behind == [True, True, True, False, False], "behind (the worker ticks again at once) until the last page"


def test_alarms_escalating_at_once_are_escalated_a_page_a_tick(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_HIGH_S": [60.0], "ESCALATION_TIER_WEBHOOKS": []}
    alerted = timezone.now() - timedelta(seconds=61)
    silent_running_pumps(PER_TICK + 3, silent_for_s=0)
    for device_id in Device.objects.values_list("device_id", flat=True):
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=AlarmPriority.HIGH,
                        source=AlarmSource.DEVICE, now=alerted)  # fmt: skip
    housekeeping, escalated = Housekeeping(), []
    for _ in range(3):
        housekeeping.escalations(timezone.now())
        escalated.append(Alarm.objects.filter(escalation_level=1).count() - sum(escalated))
    assert escalated == [PER_TICK, 3, 0], f"escalated per tick: {escalated}"


def test_the_worker_runs_housekeeping_again_at_its_next_turn_while_housekeeping_is_behind(monkeypatch):
    from realtime.bridge import worker

    class Checks:
        behind = True

        def __init__(self) -> None:
            self.parts: list[list[int] | None] = []

        def tick(self, now, *, connected_since, clock=None, parts=None) -> None:
            self.parts.append(parts)

    class Outbox:
        acked = worker.queue.SimpleQueue()

        def tick(self, now) -> None:
            pass

    clock = [0.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock[0])
    bridge = worker.Bridge()
    bridge.housekeeping, bridge.outbox = Checks(), Outbox()
    bridge._next_heartbeat, bridge._heartbeat_connected_since = float("inf"), bridge.link.connected_since
    for turn in range(4):  # one outbox tick apart, well within housekeeping_s
        clock[0] = turn * bridge.limits.tick_s
        bridge.maybe_tick()
    assert bridge.housekeeping.parts == [None] * 4, "while behind, every turn runs the next page of every check"
    bridge.housekeeping.behind = False
    start = clock[0]
    for turn in range(1, 2 * PARTS + 1):
        clock[0] = start + turn * bridge.limits.tick_s * 1.01
        bridge.maybe_tick()
    assert bridge.housekeeping.parts[4:] == [[part] for part in range(PARTS)] * 2, (
        "caught up: a round of the checks every housekeeping_s again, a part of them each outbox tick"
    )
    assert PARTS * bridge.limits.tick_s <= bridge.limits.housekeeping_s, "a round takes longer than housekeeping_s"


def test_a_full_page_of_held_pumps_does_not_hurry_housekeeping(settings):
    """Held pumps (their messages wait in the bridge: a flood) fill the page but need nothing now: housekeeping
    keeps its interval then, rather than scanning every turn of a worker that is busiest exactly then."""
    silent_running_pumps(PER_TICK + 1, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 60)
    housekeeping = Housekeeping()
    housekeeping.waiting_since = lambda device_id: timezone.now() - timedelta(hours=1)
    assert housekeeping.silent_sessions(timezone.now()) is False, "a page all held must not say housekeeping is behind"
    assert Housekeeping().silent_sessions(timezone.now()) is True, "a page alarmed in full: more may be due now"


def test_a_round_of_parts_runs_every_check_of_the_housekeeping_once():
    """The worker spreads a round of the checks over PARTS ticks: each check is in exactly one part."""
    checks = Housekeeping().checks
    parts = [list(part_checks(checks, [part])) for part in range(PARTS)]
    assert sorted(name for part in parts for name in part) == sorted(checks), f"checks in no part or in two: {parts}"
    assert all(parts), f"a part with no check: {parts}"


def test_a_commit_between_parts_wakes_the_checks_of_the_parts_still_to_come():
    """Asleep checks (nothing of their kind due within their horizon) wake when this bridge commits, whichever part of
    the round comes next (the commit may carry a deadline already past: a message heard a while ago): each part's
    checks run at its next turn, as every check ran at the tick after a commit before the round was spread (asking
    is not enough: the stale check's run forgets the pumps heard again, review 51)."""
    ran: list[str] = []
    asked: list[str] = []

    def check(name: str):
        return (lambda now: ran.append(name) or False, lambda moment: asked.append(name) or False, lambda: [20.0])

    class Schedule(CheckSchedule):
        def __init__(self) -> None:
            super().__init__()
            self.checks = {name: check(name) for name in ("first", "second")}

        def change_log_prune(self, now) -> None:
            pass

    schedule, now, linked = Schedule(), timezone.now(), timezone.now() - timedelta(hours=1)
    schedule.tick(now, connected_since=linked)  # the first tick runs every check
    for part in range(PARTS):  # idle: each asks whether anything is due by its horizon, nothing is, each sleeps
        schedule.tick(now, connected_since=linked, parts=[part])
    assert (ran, asked) == (["first", "second"], ["first", "second"]), f"ran {ran}, asked {asked}"
    schedule.tick(now, connected_since=linked, parts=[0])
    assert asked == ["first", "second"], "an asleep check asked again before its horizon with nothing committed"
    schedule.committed = True  # the worker committed a batch
    schedule.tick(now, connected_since=linked, parts=[1])
    assert ran[2:] == ["second"], f"after a commit, the next part's check did not run (ran: {ran})"
    schedule.tick(now, connected_since=linked, parts=[0])
    assert ran[3:] == ["first"], f"after a commit, the asleep check of a later part did not run (ran: {ran})"
    schedule.tick(now, connected_since=linked, parts=[0, 1])
    assert (ran[4:], asked[2:]) == ([], ["first", "second"]), f"woken once, ran twice (ran {ran}, asked {asked})"
