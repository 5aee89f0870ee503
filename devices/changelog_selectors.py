"""Selectors of the change log (the one road of every committed change, read by the publisher)."""

from collections.abc import Sequence
from datetime import datetime

from django.db import connection

from devices.models import ChangeLogEntry
from devices.services.prepared import Prepared

CHANGE_LOG_COLUMNS = ("id", "device_id", "device_code", "seq", "event", "body", "ward_code", "created_at")


def change_log_after(*, after_id: int, limit: int) -> list[tuple]:
    """Committed change-log rows after `after_id`, oldest first, as tuples of `CHANGE_LOG_COLUMNS`."""
    rows = ChangeLogEntry.objects.filter(id__gt=after_id).order_by("id").values_list(*CHANGE_LOG_COLUMNS)
    return list(rows[:limit])


def change_log_these(*, ids: Sequence[int]) -> list[tuple]:
    """The committed change-log rows among `ids`, oldest first (ids the publisher passed over while uncommitted).

    On PostgreSQL the ids go as one array (`id = ANY(%s)`), not `IN` with a parameter each: the publisher asks at
    every read for every id it holds (10,000 ids: 10 ms instead of 141 ms; 100 ids: 0.8 ms instead of 1.0 ms).
    """
    entries = ChangeLogEntry.objects.order_by("id")
    if connection.vendor == "postgresql":
        column = f'"{ChangeLogEntry._meta.db_table}"."id"'
        entries = entries.extra(where=[f"{column} = ANY(%s)"], params=[list(ids)])
    else:
        entries = entries.filter(id__in=ids)
    return list(entries.values_list(*CHANGE_LOG_COLUMNS))


def change_log_between(*, first: int, last: int) -> list[tuple]:
    """The committed change-log rows with ids from `first` to `last`, oldest first (a range of ids given up)."""
    rows = ChangeLogEntry.objects.filter(id__gte=first, id__lte=last).order_by("id")
    return list(rows.values_list(*CHANGE_LOG_COLUMNS))


def transactions_horizon() -> tuple[int, int]:
    """PostgreSQL's oldest transaction id still running and the next one to be handed out (a snapshot's `xmin` and
    `xmax`, all databases' and roles' transactions that have an id): every transaction below `xmin` has ended."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint "
                       "FROM pg_current_snapshot() AS s")  # fmt: skip
        return cursor.fetchone()


def change_log_extent() -> tuple[int, int, datetime | None]:
    """The log's lowest and highest id (0, 0 when empty) and when its oldest entry was recorded."""
    oldest, newest = OLDEST.rows(), NEWEST.rows()  # (compiled once: the publisher's idle poll asks every second)
    if not oldest or not newest:
        return 0, 0, None
    return oldest[0][0], newest[0][0], oldest[0][1]


def change_log_newest_id() -> int:
    """The highest id in the log (0 when empty): it moves whenever any process commits a change of a pump."""
    newest = NEWEST.rows()
    return newest[0][0] if newest else 0


NEWEST = Prepared(lambda: ChangeLogEntry.objects.order_by("-id").values_list("id")[:1])
OLDEST = Prepared(lambda: ChangeLogEntry.objects.order_by("id").values_list("id", "created_at")[:1])
