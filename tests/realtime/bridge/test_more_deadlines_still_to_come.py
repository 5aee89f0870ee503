"""More deadlines stamped while the server's clock ran ahead, the clock then put right (review 48, time; the first five
are `test_deadlines_still_to_come.py`): each is brought back so that it lies at most its own length ahead, on the side
of the alarm, by the housekeeping step that brings back moments of hearing, which reads once when nothing lies ahead.

- an order placed then, its START never published, times out a confirmation time after the correction (not an hour);
- a silence whose `until` lies beyond `WARD_SILENCE_MAX_S` (whatever wrote it) is cut to it, and no station is told
  more than that left even before housekeeping comes;
- a Stop brought back is told (`device:command` with its new `expiresAt`): pages time "overdue" from it;
- a webhook retry whose next try lies beyond its retry delay is due now;
- a dead Daphne's socket seen then no longer counts against its user's socket cap.
"""

from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices.models import ChangeLogEntry, Command, EscalationDelivery, InfusionSession, LiveSocket, WardSilence
from devices.services.deadlines_ahead import moments_ahead
from devices.services.deliveries import escalation_deliveries_due
from devices.services.requests import infusion_request
from devices.services.sessions import infusion_start
from devices.services.silences import ward_silence
from devices.services.sockets import live_socket_open
from devices.silence_selectors import ward_silences_current
from devices.states import CommandKind, SessionStatus
from devices.ward_payloads import silence_body
from protocol import events
from realtime.bridge.housekeeping import Housekeeping
from realtime.sio.socket_cap import STALE_ROUNDS
from tests.factories import make_device, make_order, make_user, make_ward, raise_high_alarm
from tests.realtime.bridge.test_deadlines_still_to_come import AHEAD, put_right_and_tick
from tests.support.ingest import started_order

pytestmark = pytest.mark.django_db


def test_an_order_placed_while_the_clock_ran_ahead_times_out_a_confirmation_time_after_the_clock_is_put_right():
    make_device("AHEAD_ORDER", has_presence=True)
    session = infusion_start(device_id="AHEAD_ORDER", order=make_order())
    ahead = timezone.now() + AHEAD  # placed on the wrong clock: its START never published (the broker away)
    InfusionSession.objects.filter(pk=session.pk).update(created_at=ahead, status_changed_at=ahead)
    Command.objects.filter(session=session).update(created_at=ahead, state_changed_at=ahead,
                                                   expires_at=ahead + timedelta(seconds=40))  # fmt: skip
    put_right_and_tick(after_s=settings.PUMPSTREAM["CONFIRMATION_TIMEOUT_S"] + 1)
    session.refresh_from_db()
    assert session.status == SessionStatus.TIMED_OUT, (
        f"{settings.PUMPSTREAM['CONFIRMATION_TIMEOUT_S']:g} s after the clock was put right, the order never confirmed "
        f"is {session.status} (placed at {session.created_at:%H:%M:%S}, an hour on): its pump is held for the hour"
    )


def test_a_silence_beyond_the_longest_is_cut_to_it_and_no_station_is_told_more():
    ward = make_ward("longsil")
    make_device("LONG_SIL", ward=ward, has_presence=True)
    silence = ward_silence(ward=ward, user=make_user("long-sil", ward=ward), seconds=60, reason="Round")
    WardSilence.objects.filter(pk=silence.pk).update(until=silence.started_at + timedelta(hours=1))
    most = settings.PUMPSTREAM["WARD_SILENCE_MAX_S"]
    now = timezone.now()
    told = silence_body("longsil", ward_silences_current(now=now)["longsil"], now=now).remainingS
    assert told <= most, f"a station subscribing is told {told:g} s left, more than a silence may last ({most:g} s)"
    put_right_and_tick(after_s=1)
    silence.refresh_from_db()
    assert silence.until <= silence.started_at + timedelta(seconds=most), (
        f"the silence ends {(silence.until - silence.started_at).total_seconds():g} s after it began (at most {most:g})"
    )


def test_a_stop_brought_back_is_told_with_its_new_deadline():
    make_device("AHEAD_TOLD", has_presence=True)
    session = started_order("AHEAD_TOLD", drug="Heparin")
    stop = infusion_request(device_id="AHEAD_TOLD", kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=make_user("ahead-told"), now=timezone.now() + AHEAD)  # fmt: skip
    put_right_and_tick(after_s=1)
    told = ChangeLogEntry.objects.filter(device_code="AHEAD_TOLD", event=events.DEVICE_COMMAND).order_by("seq").last()
    command = told.body["command"]
    latest = timezone.now() + timedelta(seconds=settings.PUMPSTREAM["COMMAND_EXPIRY_S"])
    assert command["commandId"] == str(stop.command_id), f"the Stop was not told again: last told {command}"
    assert datetime.fromisoformat(command["expiresAt"]) <= latest, (
        f"the pages were told the Stop's deadline is {command['expiresAt']}, an hour on: never shown overdue"
    )


def test_a_webhook_retry_set_while_the_clock_ran_ahead_is_due_once_the_clock_is_put_right(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_WEBHOOK_RETRY_S": 2.0}
    make_device("AHEAD_RETRY", has_presence=True)
    alarm = raise_high_alarm("AHEAD_RETRY")
    later = EscalationDelivery.objects.create(alarm=alarm, tier=1, url="http://127.0.0.1:9/page", tries=1,
                                              next_try_at=timezone.now() + timedelta(seconds=2.5))  # fmt: skip
    ahead = EscalationDelivery.objects.create(alarm=alarm, tier=2, url="http://127.0.0.1:9/page", tries=1,
                                              next_try_at=timezone.now() + AHEAD + timedelta(seconds=2))  # fmt: skip
    due = [delivery_id for delivery_id, _, _ in escalation_deliveries_due(now=timezone.now())]
    assert due == [ahead.pk], (
        f"due now: {due}; the retry set on the clock an hour ahead ({ahead.pk}) must be, the one 2.5 s on "
        f"({later.pk}, within its retry delay and a second) not yet"
    )


def test_a_socket_seen_while_the_clock_ran_ahead_no_longer_holds_its_users_cap():
    now = timezone.now()
    LiveSocket.objects.create(process="dead-daphne", conn_id="c1", principal="user:7", opened_at=now + AHEAD,
                              seen_at=now + AHEAD)  # fmt: skip
    put_right_and_tick(after_s=1)
    stale_s = max(settings.PUMPSTREAM["RIGHTS_RECHECK_S"] * STALE_ROUNDS, 5.0)
    later = timezone.now() + timedelta(seconds=stale_s + 1)  # the dead process's rows stop counting after stale_s
    admitted = live_socket_open(process="daphne", conn_id="c2", principal="user:7", cap=1, now=later,
                                fresh_after=later - timedelta(seconds=stale_s))  # fmt: skip
    assert admitted, "her socket is refused: a dead process's socket seen an hour on still counts against her cap"


def test_nothing_ahead_costs_one_read():
    make_device("NOTHING_AHEAD", has_presence=True)
    raise_high_alarm("NOTHING_AHEAD")
    housekeeping = Housekeeping()
    with CaptureQueriesContext(connection) as queries:
        housekeeping.heard_ahead_pull_back(timezone.now())
    read = [query["sql"][:60] for query in queries]
    assert len(read) == 1, f"with nothing ahead, the pull-back read {len(read)} times: {read}"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's EXPLAIN QUERY PLAN")
def test_the_one_read_scans_no_history():
    with CaptureQueriesContext(connection) as queries:
        moments_ahead(now=timezone.now())
    with connection.cursor() as cursor:
        plan = [row[-1] for row in cursor.execute(f"EXPLAIN QUERY PLAN {queries[0]['sql']}").fetchall()]
    history = ("devices_alarm", "devices_command", "devices_infusionsession", "devices_wardsilence")
    scans = [
        step for step in plan if step.startswith(tuple(f"SCAN {table}" for table in history)) and "INDEX" not in step
    ]
    assert not scans, f"every 5 s the read of moments ahead scans a table that grows with history: {plan}"
