"""Housekeeping asks after every commit whether any alarm is due (a reminder, an escalation tier, a flood alarm's
counts or news). Alarms are never pruned, so a query that reads every alarm grows with the ward's history: with
100,000 cleared alarms the checks took 160 ms a tick on SQLite, 11 ms with the active alarms' partial index
(`alarm_active_by_type`; `bench/alarm_history.py`). No timing here: SQLite's plan of each of those queries must read
the active alarms through an index, never scan the table."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from realtime.bridge.housekeeping import Housekeeping

pytestmark = pytest.mark.django_db

ALARM_CHECKS = ("reminders", "escalations", "flood_news", "flood_counts")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's EXPLAIN QUERY PLAN")
@pytest.mark.parametrize("check", ALARM_CHECKS)
def test_an_alarm_check_never_scans_the_alarm_history(check):
    due_by = Housekeeping().checks[check][1]
    with CaptureQueriesContext(connection) as queries:
        due_by(timezone.now())
    alarm_reads = [query["sql"] for query in queries.captured_queries if '"devices_alarm"' in query["sql"]]
    assert alarm_reads, f"{check} read no alarm"
    with connection.cursor() as cursor:
        for sql in alarm_reads:
            plan = [row[-1] for row in cursor.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()]
            scans = [step for step in plan if step.startswith("SCAN devices_alarm") and "INDEX" not in step]
            assert not scans, f"{check} scans every alarm ever raised: {plan}\n{sql}"
