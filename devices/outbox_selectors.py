"""Selectors of the bridge's command outbox: whether anything waits, what to publish, what moved on meanwhile."""

from datetime import datetime

from django.db import connection

from devices.housekeeping_selectors import starts_past_order_deadline
from devices.models import Command
from devices.services.sql import select_in_sql
from devices.states import CommandState


def commands_queued_any() -> bool:
    """Whether any command waits to be published (the outbox's tick: one indexed look-up, SQL written once)."""
    sql = select_in_sql(Command, ("id",), (), equal=("state",)) + " LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, [CommandState.QUEUED.value])
        return cursor.fetchone() is not None


def commands_no_longer_queued(*, command_pks: list[int]) -> list[int]:
    """Of these commands, the ones that moved on from `queued` (superseded, ended, or sent by another road)."""
    moved_on = Command.objects.filter(pk__in=command_pks).exclude(state=CommandState.QUEUED)
    return list(moved_on.values_list("pk", flat=True))


def commands_to_publish(*, now: datetime, in_flight: list[int], limit: int) -> list[Command]:
    """Queued commands not yet expired (a START: nor past its deadline from the order) nor handed to the broker,
    oldest first, with their pumps."""
    waiting = Command.objects.filter(state=CommandState.QUEUED, expires_at__gt=now).exclude(pk__in=in_flight)
    waiting = waiting.exclude(starts_past_order_deadline(by=now))
    return list(waiting.select_related("device").order_by("created_at", "pk")[:limit])
