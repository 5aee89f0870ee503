"""One row a housekeeping check cannot handle (its own fault, not the database's) must not stop the other rows of
that check: they are handled in the same tick, the bad row is logged once with its id, counted, skipped for a
while and dead-lettered after a bounded number of failures; a database error still ends the tick (retried).

Before: `check_run` guarded the check as a whole, so one alarm whose escalation raised (read first every tick, the
longest waiting) made the escalations check fail every tick: no other alarm escalated, no webhook outcome recorded,
no due page posted (review 4)."""

import logging
from datetime import timedelta

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from devices.models import Alarm, DeadLetter, Device, InfusionSession
from devices.services import alarm_rules, escalations
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource, SessionStatus
from realtime.bridge import rows
from realtime.bridge.housekeeping import PER_TICK, Housekeeping
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db
CONNECTED_LONG_AGO = timezone.now() - timedelta(hours=1)


def alarms_on(count: int, *, alerted_ago_s: float) -> list[int]:
    """One high alarm on each of `count` pumps, alerted that long ago; their ids, the longest waiting first."""
    ward, alerted = make_ward("rows"), timezone.now() - timedelta(seconds=alerted_ago_s)
    ids = []
    for index in range(count):
        device_id = f"ROW_{index:03d}"
        make_device(device_id, ward=ward)
        with transaction.atomic():
            alarm = alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=AlarmPriority.HIGH,
                                source=AlarmSource.DEVICE, now=alerted + timedelta(milliseconds=index))  # fmt: skip
        ids.append(alarm.pk)
    return ids


def failing_for(module, name: str, bad: set[int], monkeypatch) -> None:
    """The per-row service `module.name` raises (not a database error) for the rows `bad`."""
    handle = getattr(module, name)

    def sometimes_failing(row_id: int, *args):
        if row_id in bad:
            raise ValueError(f"row {row_id} the code cannot handle")
        return handle(row_id, *args)

    monkeypatch.setattr(module, name, sometimes_failing)


@pytest.fixture
def escalating(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_HIGH_S": [60.0], "ESCALATION_TIER_WEBHOOKS": []}


def test_one_alarm_that_cannot_escalate_does_not_stop_the_others(escalating, monkeypatch, caplog):
    ids = alarms_on(4, alerted_ago_s=61)
    failing_for(escalations, "_escalate", {ids[0]}, monkeypatch)
    housekeeping = Housekeeping()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            housekeeping.tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
    escalated = set(Alarm.objects.filter(escalation_level=1).values_list("pk", flat=True))
    assert escalated == set(ids[1:]), (
        f"one alarm whose escalation raises (the longest waiting, read first) stopped the others: escalated "
        f"{sorted(escalated)} of {ids[1:]}"
    )
    logged = [record for record in caplog.records if getattr(record, "row_id", None) == ids[0]]
    assert len(logged) == 1, f"the failing row is logged once with its id, not every tick: {len(logged)}"


def test_one_reminder_that_fails_does_not_stop_the_others(settings, monkeypatch):
    ids = alarms_on(3, alerted_ago_s=1)
    nurse = make_user("nurse")
    for alarm in Alarm.objects.filter(pk__in=ids):
        alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)
    Alarm.objects.filter(pk__in=ids).update(acknowledged_at=timezone.now() - timedelta(hours=2))
    failing_for(alarm_rules, "_remind", {ids[0]}, monkeypatch)
    Housekeeping().tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
    reminded = set(Alarm.objects.filter(acknowledged_at__isnull=True).values_list("pk", flat=True))
    assert reminded == set(ids[1:]), f"one reminder that fails stopped the others: reminded {sorted(reminded)}"


def test_a_page_full_of_failing_rows_does_not_block_the_rows_after_it(escalating, monkeypatch):
    ids = alarms_on(PER_TICK + 2, alerted_ago_s=61)
    failing_for(escalations, "_escalate", set(ids[:PER_TICK]), monkeypatch)
    housekeeping = Housekeeping()
    for _ in range(3):
        housekeeping.escalations(timezone.now())
    escalated = set(Alarm.objects.filter(escalation_level=1).values_list("pk", flat=True))
    assert escalated == set(ids[PER_TICK:]), "failing rows filling a page are skipped by the next page's query"


def test_a_failing_row_is_counted_skipped_for_a_while_and_dead_lettered_after_a_bound(escalating, monkeypatch):
    ids = alarms_on(1, alerted_ago_s=61)
    calls: list[int] = []
    handle = escalations._escalate

    def failing(row_id: int, *args):
        calls.append(row_id)
        raise ValueError("cannot escalate")

    monkeypatch.setattr(escalations, "_escalate", failing)
    housekeeping, now = Housekeeping(), timezone.now()
    failures_before = rows.metrics.HOUSEKEEPING_ROW_FAILURES.labels(check="escalations")._value.get()
    for tick in range(400):  # 200 s of ticks, 500 ms apart
        housekeeping.escalations(now + timedelta(seconds=tick / 2))
    failures = rows.metrics.HOUSEKEEPING_ROW_FAILURES.labels(check="escalations")._value.get() - failures_before
    assert 1 < len(calls) < 20, f"a failing row is tried again after a while, not every tick: {len(calls)} tries"
    assert failures == len(calls), "each failure is counted"
    letters = DeadLetter.objects.filter(source="housekeeping", reason="row_failed")
    assert letters.count() == 1 and f"escalations/{ids[0]}" in letters.get().topic, "dead-lettered once"
    monkeypatch.setattr(escalations, "_escalate", handle)
    housekeeping.escalations(now + timedelta(seconds=600))
    assert Alarm.objects.get(pk=ids[0]).escalation_level == 1, "it is still tried now and then, and escalates"
    assert not housekeeping.rows.faults, "a row handled at last is forgotten"


def test_a_database_error_in_a_row_still_ends_the_tick(escalating, monkeypatch):
    alarms_on(2, alerted_ago_s=61)

    def locked(*args):
        raise OperationalError("database is locked")

    monkeypatch.setattr(escalations, "_escalate", locked)
    with pytest.raises(OperationalError):
        Housekeeping().tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)


def test_one_silent_pump_that_cannot_be_alarmed_does_not_stop_the_others(settings, monkeypatch):
    heard = timezone.now() - timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    ward = make_ward("silent")
    for index in range(3):
        device = Device.objects.create(device_id=f"SIL_{index}", ward=ward, last_seen_at=heard,
                                       latest_progress_at=heard)  # fmt: skip
        InfusionSession.objects.create(device=device, status=SessionStatus.RUNNING, flow_rate_ml_min=1,
                                       planned_volume_ml=10, planned_time_min=10, status_changed_at=heard,
                                       created_at=heard)  # fmt: skip
    from realtime.bridge import housekeeping as module

    check = module.pump_silence_check

    def failing(*, device_id: str, now):
        if device_id == "SIL_0":
            raise ValueError("cannot alarm this pump")
        return check(device_id=device_id, now=now)

    monkeypatch.setattr(module, "pump_silence_check", failing)
    Housekeeping().tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
    alarmed = set(Alarm.objects.filter(type="communication_lost").values_list("device__device_id", flat=True))
    assert alarmed == {"SIL_1", "SIL_2"}, f"one pump that cannot be alarmed stopped the others: {alarmed}"


def test_one_overdue_command_that_cannot_be_ended_does_not_stop_the_others(monkeypatch):
    from devices.models import Command
    from devices.services import command_deadlines
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    ward = make_ward("cmds")
    for device_id in ("CMD_A", "CMD_B"):
        make_device(device_id, ward=ward)
        infusion_start(device_id=device_id, order=make_order())
    poison, good = Command.objects.order_by("created_at", "pk")
    Command.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    failing_for(command_deadlines, "_end_overdue", {poison.pk}, monkeypatch)
    Housekeeping().overdue_commands(timezone.now())
    assert Command.objects.get(pk=good.pk).state == "expired", "one command that cannot be ended stopped the others"
