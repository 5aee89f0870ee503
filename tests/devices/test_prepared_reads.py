"""The housekeeping checks' reads compiled once per shape (`devices/services/prepared.py`) give what the ORM gives.

Every `Prepared` read is run, on a ward holding a row of each kind the checks look for, at moments before, at and
after the rows' own, with each run compared with the ORM's own reading of the same queryset (`orm_shadow`); every
one of them must have been run and have found a row at least once, so that a new one is compared too. On
PostgreSQL as on SQLite (`make test`'s PostgreSQL run).
"""

import gc
import threading
import weakref
from datetime import datetime, timedelta

import pytest
from django.db import connections
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from devices import housekeeping_selectors as due
from devices.changelog_selectors import change_log_extent, change_log_newest_id
from devices.models import Alarm, ChangeLogEntry, Command, Device, EscalationDelivery, InfusionSession
from devices.services import prepared as prepared_module
from devices.services.deadlines_ahead import moments_ahead
from devices.services.prepared import PREPARED, Prepared, StandInDerived
from devices.states import (
    ALARM_FLOOD,
    FLOOD_COUNTS_HELD,
    FLOOD_NEWS_DEFERRED,
    AlarmPriority,
    AlarmSource,
    AlarmState,
    CommandKind,
    CommandState,
    Presence,
    PumpState,
    ReadBack,
    SessionStatus,
)
from tests.factories import make_ward

pytestmark = pytest.mark.django_db


@pytest.fixture
def orm_shadow(monkeypatch):
    """Every `Prepared` run checked against the ORM's reading of the same queryset; what ran, and what found rows."""
    ran: dict[Prepared, int] = {}
    original = Prepared._run

    def shadowed(self, exists, moments, shape):
        rows = original(self, exists, moments, shape)
        queryset = self.build(*moments, **shape)
        expected = queryset.exists() if exists else list(queryset)
        assert (bool(rows) if exists else rows) == expected, f"{self.build.__qualname__}{moments}{shape}"
        with override_settings(PUMPSTREAM={}):  # a builder reads no setting: those are its shape values
            self.build(*moments, **shape)
        ran[self] = ran.get(self, 0) + bool(rows)
        return rows

    monkeypatch.setattr(Prepared, "_run", shadowed)
    return ran


def ward_of_every_kind(now):
    """A row of each kind a check reads, its moments an hour to a minute old."""
    ward, old, older = make_ward(), now - timedelta(minutes=1), now - timedelta(hours=1)

    def pump(device_id, **fields):
        return Device.objects.create(device_id=device_id, ward=ward, **fields)

    def session(device, status, **fields):
        return InfusionSession.objects.create(device=device, infusion_id=f"inf_{device.device_id}_{status}",
                                              status=status, flow_rate_ml_min=1, planned_volume_ml=10,
                                              planned_time_min=10, **fields)  # fmt: skip

    def alarm(device, type_, **fields):
        return Alarm.objects.create(device=device, type=type_, priority=fields.pop("priority", AlarmPriority.HIGH),
                                    source=fields.pop("source", AlarmSource.DEVICE), state=AlarmState.ACTIVE,
                                    message=type_,
                                    raised_at=older, **fields)  # fmt: skip

    silent = pump("SILENT", last_seen_at=older, latest_progress_at=older, pump_state=PumpState.RUNNING)
    session(silent, SessionStatus.RUNNING, status_changed_at=older)
    unordered = pump("UNORDERED", last_seen_at=older, latest_progress_at=older, pump_state=PumpState.RUNNING)
    alarm(unordered, "infusing_without_order", source=AlarmSource.SERVER)
    pending = pump("PENDING", last_seen_at=now)
    published = session(pending, SessionStatus.PENDING, created_at=older)
    Command.objects.create(device=pending, session=published, kind=CommandKind.START_INFUSION, created_at=older,
                           published_at=old, sent_at=old, expires_at=old + timedelta(seconds=40),
                           state=CommandState.SENT)  # fmt: skip
    never = pump("NEVER", last_seen_at=now)
    session(never, SessionStatus.PENDING, created_at=old)
    for device_id, status, read_back in (("UNVERIFIED", SessionStatus.RUNNING, ReadBack.UNVERIFIED),
                                         ("UNVERIFIED_2", SessionStatus.PAUSED, ReadBack.MISMATCH)):  # fmt: skip
        session(pump(device_id, last_seen_at=now, latest_progress_at=now), status, status_changed_at=now,
                read_back=read_back, unconfirmed_since=now - timedelta(minutes=40))  # fmt: skip
    session(pump("UNVERIFIED_3", last_seen_at=now), SessionStatus.RUNNING, status_changed_at=now,
            read_back=ReadBack.UNVERIFIED, unconfirmed_since=now - timedelta(minutes=50))  # fmt: skip
    commanded = pump("COMMANDED", last_seen_at=now)
    for minutes in (30, 2):
        Command.objects.create(device=commanded, kind=CommandKind.PAUSE_INFUSION,
                               expires_at=now - timedelta(minutes=minutes))  # fmt: skip
    pump("PRESENT", last_seen_at=older, has_presence=True, presence=Presence.ONLINE)
    pump("PRESENT_2", last_seen_at=old, has_presence=True, presence=Presence.ONLINE)
    pump("GONE", last_seen_at=older, has_presence=True, presence=Presence.OFFLINE)
    alarmed = pump("ALARMED", last_seen_at=now)
    for priority, minutes in ((AlarmPriority.HIGH, 30), (AlarmPriority.MEDIUM, 30), (AlarmPriority.LOW, 50)):
        alarm(alarmed, f"unanswered_{priority}", priority=priority, alerted_at=now - timedelta(minutes=minutes))
        alarm(alarmed, f"acknowledged_{priority}", priority=priority, alerted_at=older,
              acknowledged_at=now - timedelta(minutes=minutes))  # fmt: skip
    alarm(alarmed, "escalated_once", alerted_at=older, escalation_level=1)
    flood = alarm(alarmed, ALARM_FLOOD, source=AlarmSource.SERVER, alerted_at=now, acknowledged_at=now,
                  details={FLOOD_NEWS_DEFERRED: old.isoformat(),
                           FLOOD_COUNTS_HELD: {"since": old.isoformat(), "repeats": 2, "message": "m"}})  # fmt: skip
    EscalationDelivery.objects.create(alarm=flood, tier=1, url="http://127.0.0.1:9/page", next_try_at=old)
    ChangeLogEntry.objects.create(device=alarmed, device_code="ALARMED", seq=1, event="device:alarm", body={},
                                  created_at=now)  # fmt: skip


def every_read(now, moment):
    """Every read the checks make, as of `moment`, with pages small enough to need their `after`/`offset`."""
    due.devices_silent_unalarmed(now=moment, limit=1)
    due.devices_silent_unalarmed(now=moment, limit=1, offset=1)
    due.devices_silent_unalarmed(now=moment, limit=5, offset=3)
    due.devices_stale_by_silence(cutoff=moment - timedelta(minutes=5))
    due.devices_presence_unvouched(started_at=moment, limit=5)
    due.devices_presence_unvouched(started_at=moment, limit=1, exclude={"PRESENT"})
    for cutoff in (moment - timedelta(minutes=45), moment):
        page = due.sessions_unconfirmed_since(cutoff=cutoff, limit=1)
        if page:
            due.sessions_unconfirmed_since(cutoff=cutoff, limit=1, after=(page[-1][2], page[-1][3]))
        page = due.sessions_unverified_since(cutoff=cutoff, limit=1)
        if page:
            due.sessions_unverified_since(cutoff=cutoff, limit=2, after=(page[-1][2], page[-1][0]))
    due.commands_due_by(moment)
    first = due.commands_overdue_page(by=moment, limit=1)
    due.commands_overdue_page(by=moment, limit=1, exclude={pk for pk, _ in first})
    due.reminders_due_by(moment)
    due.alarms_reminder_page(by=moment + timedelta(hours=1), limit=5, exclude={0})
    due.escalations_due_by(moment)
    due.alarms_escalation_page(by=moment, limit=50)
    due.alarms_escalation_page(by=moment + timedelta(hours=2), limit=2, exclude={0})
    due.flood_news_due_by(moment)
    due.flood_counts_due_by(moment)
    due.deliveries_pending_any()
    change_log_newest_id()
    change_log_extent()
    moments_ahead(now=moment)


def test_every_prepared_read_gives_what_the_orm_gives(orm_shadow):
    now = timezone.now()
    ward_of_every_kind(now)
    for moment in (now - timedelta(hours=2), now - timedelta(minutes=35), now, now + timedelta(hours=3)):
        every_read(now, moment)
    prepared_here = {prepared for prepared in PREPARED if prepared.build.__module__.startswith("devices.")}
    assert set(orm_shadow) >= prepared_here, (
        f"not run: {[p.build.__qualname__ for p in prepared_here - set(orm_shadow)]}"
    )
    found_none = [prepared.build.__qualname__ for prepared in prepared_here if not orm_shadow[prepared]]
    assert not found_none, f"never found a row, so never compared with one: {found_none}"


def test_the_settings_read_at_each_run_change_what_is_found(settings):
    """A timeout from the settings is bound at each run (a cutoff, or a shape value): changed, it is obeyed at
    once, never the value of the SQL's first compilation."""
    now = timezone.now()
    ward_of_every_kind(now)
    assert due.devices_silent_unalarmed(now=now, limit=5) == ["SILENT", "UNORDERED"]
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": 7200}
    assert due.devices_silent_unalarmed(now=now, limit=5) == [], "silent an hour: not past a two-hour heartbeat"
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_HIGH_S": [], "ESCALATION_MEDIUM_S": [],
                           "ESCALATION_LOW_S": [60]}  # fmt: skip
    assert [pk for pk, _ in due.alarms_escalation_page(by=now, limit=50)] == list(
        Alarm.objects.filter(type="unanswered_low").values_list("pk", flat=True)
    ), "only the low alarm has a tier left"
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_LOW_S": []}
    assert due.alarms_escalation_page(by=now, limit=50) == [], "no tier set: none due"


def test_a_moment_derived_inside_the_builder_is_refused():
    derived = Prepared(lambda by: Device.objects.filter(last_seen_at__lt=by - timedelta(seconds=1)).values_list("pk"))
    unused = Prepared(lambda by: Device.objects.values_list("pk"))
    through_f = Prepared(lambda by: Device.objects.filter(last_seen_at__lt=F("created_at")).values_list("pk"))
    try:
        with pytest.raises(StandInDerived, match="not one given"):
            derived.rows(timezone.now())
        with pytest.raises(StandInDerived, match="out of its SQL"):
            unused.rows(timezone.now())
        with pytest.raises(StandInDerived, match="out of its SQL"):
            through_f.rows(timezone.now())
    finally:
        for made in (derived, unused, through_f):
            PREPARED.remove(made)


def test_rows_are_converted_as_the_orm_converts_them():
    """An annotated moment (SQLite returns text), a JSON column, in `values_list`'s order."""
    now = timezone.now()
    ward_of_every_kind(now)
    read = Prepared(lambda cutoff: Alarm.objects.filter(raised_at__lt=cutoff).order_by("pk")
                    .annotate(moment=F("alerted_at")).values_list("details", "moment", "pk"))  # fmt: skip
    try:
        rows = read.rows(now)
        assert rows == list(Alarm.objects.order_by("pk").annotate(moment=F("alerted_at"))
                            .values_list("details", "moment", "pk"))  # fmt: skip
        assert any(isinstance(details, dict) and details for details, _, _ in rows)
        assert all(moment is None or moment.tzinfo is not None for _, moment, _ in rows)
    finally:
        PREPARED.remove(read)


def test_compiled_shapes_are_bounded(monkeypatch):
    monkeypatch.setattr(prepared_module, "KEPT_SHAPES", 3)
    read = Prepared(lambda cutoff, *, limit: Device.objects.filter(last_seen_at__lt=cutoff).values_list("pk")[:limit])
    try:
        for limit in range(1, 10):
            read.rows(timezone.now(), limit=limit)
            assert len(read.compiled) <= 3
    finally:
        PREPARED.remove(read)


@pytest.mark.parametrize("moment", [None, datetime(2026, 7, 1, 11, 0), "2026-07-01 11:00:00"])  # noqa: DTZ001
def test_a_moment_not_an_aware_datetime_is_refused(moment):
    """The ORM reads a naive moment in TIME_ZONE (an hour off UTC in summer) and refuses None: bound as they are, a
    naive one would be read as UTC and None as nothing due (review of eb5fdb2, F1/F2)."""
    with pytest.raises(TypeError, match="aware datetime"):
        due.devices_stale_by_silence(cutoff=moment)


def test_a_moment_read_inside_the_builder_is_refused():
    """A builder reading the clock itself would keep the first compilation's moment for ever (review F3)."""
    frozen = Prepared(lambda by: Device.objects.filter(last_seen_at__lt=by, created_at__lt=timezone.now())
                      .values_list("pk"))  # fmt: skip
    try:
        with pytest.raises(StandInDerived, match="not one given"):
            frozen.rows(timezone.now())
    finally:
        PREPARED.remove(frozen)


@pytest.mark.django_db(transaction=True)
def test_a_read_keeps_no_thread_connection_alive():
    """Compiled shapes are kept per alias: a thread's connection, its read compiled on it, goes with the thread
    (review F4: keyed on the connection's operations, each thread's stayed open)."""
    read = Prepared(lambda cutoff: Device.objects.filter(last_seen_at__lt=cutoff).values_list("pk", "last_seen_at"))
    seen = []

    def in_a_thread():
        read.rows(timezone.now())
        seen.append(weakref.ref(connections["default"]))

    try:
        worker = threading.Thread(target=in_a_thread)
        worker.start()
        worker.join()
        del worker
        gc.collect()
        assert seen and seen[0]() is None, "the thread's connection outlived it"
        assert read.rows(timezone.now()) == [], "the shape compiled in the thread serves this one"
    finally:
        PREPARED.remove(read)
