"""Every command ends by its deadline: one still under way past it is ended `expired` or `failed`, decided from its row
under its pump's lock.

The bridge's housekeeping ends them all (`commands_end_overdue`); while no bridge reports, Daphne's deadline keeper
ends those whose publication is not recorded (`commands_end_unpublished`, `realtime/deadlines.py`): `expired` only if
never handed to the broker, `failed` if handed (the outbox's `handed_at`), its outcome unknown when not recorded.
"""

from collections.abc import Collection
from datetime import datetime, timedelta
from functools import partial

from devices.housekeeping_selectors import commands_overdue, commands_overdue_page
from devices.models import Command
from devices.services.commands import command_move_locked
from devices.services.rows import RowRun, row_run_plain
from devices.states import CommandState

# How long past its deadline an unsent command waits for the bridge's housekeeping before another process ends it
UNSENT_GRACE = timedelta(seconds=2)
# A command handed to the broker link (`handed_at`) whose publication was never recorded (the bridge stalled or stopped)
OUTCOME_UNKNOWN = ("it may have reached the pump: the server lost track of it while sending it; whether the pump acted "
                   "on it is unknown")  # fmt: skip


def commands_end_overdue(
    *, now: datetime, limit: int = 100, exclude: Collection[int] = (), run: RowRun = row_run_plain
) -> int:
    """End the commands past their deadline (but those in `exclude`), each through `run` (the bridge guards each)."""
    rows = commands_overdue_page(by=now, limit=limit, exclude=exclude)
    return sum(run("commands", pk, partial(_end_overdue, pk, device_id, now)) for pk, device_id in rows)


def commands_end_unpublished(*, now: datetime, limit: int = 100) -> int:
    """End the `queued` commands whose publication was never recorded and whose deadline passed `UNSENT_GRACE` ago:
    `expired` if never handed to the broker, `failed` (`OUTCOME_UNKNOWN`) if handed; returns how many.

    For Daphne while no bridge reports (crashed, crash-looping, hung): the bridge's housekeeping ends every command at
    its deadline, and without it a Stop would wait "to be sent" for as long as it stays away, with no
    `command_not_carried_out` sending anyone to the pump (review 22, finding 3). A command never handed to the broker
    can never be (the outbox never publishes after `expiresAt`), so this needs no broker; it raises the alarm as the
    bridge would. One the outbox marked handed (`handed_at`) may be in the broker's hands though the bridge stalled or
    died before recording it (issue 15): never "expired", but `failed`, its outcome unknown, the nurse sent to the pump
    all the same. Whether it was published or handed is read again under the pump's lock: a bridge alive but slow may
    record its publication after this reads the row, and such a command is the bridge's to end (review 24, finding 4).
    """
    rows = commands_overdue(by=now - UNSENT_GRACE).filter(state=CommandState.QUEUED, published_at__isnull=True)
    rows = rows.values_list("pk", "device__device_id")[:limit]
    return sum(_end_overdue(pk, device_id, now, True) for pk, device_id in rows)


def _end_overdue(pk: int, device_id: str, now: datetime, unpublished_only: bool = False) -> int:
    """End one command past its deadline as its row is under the pump's lock: `expired` if never handed to the broker,
    `failed` if the pump did not act (or, handed, never acknowledged). `unpublished_only`: only if its publication is
    not recorded (still `queued`, no `published_at`)."""

    def choose(command: Command) -> tuple[CommandState, str] | None:
        if unpublished_only and (command.state != CommandState.QUEUED or command.published_at is not None):
            return None
        return _overdue_end(command)

    return int(command_move_locked(device_id, pk, choose, now))


def _overdue_end(command: Command) -> tuple[CommandState, str]:
    """The state, and why, a command past its deadline ends in, from its row as it is now."""
    if command.state == CommandState.QUEUED and command.published_at is None and command.handed_at is None:
        return CommandState.EXPIRED, "expired before it could be sent"
    if command.state == CommandState.QUEUED and command.published_at is None:
        return CommandState.FAILED, OUTCOME_UNKNOWN
    if command.state == CommandState.QUEUED:
        return CommandState.FAILED, "published, but neither acknowledged by the broker nor acted on in time"
    return CommandState.FAILED, "the pump did not act on it in time"
