"""Writing the change log (transactional outbox) and telling the process's listeners that changes committed.

A change reaches screens one way: `change_record` appends it here, in the transaction that made it; after
that transaction commits, each Daphne process's publisher reads it (`devices.selectors.change_log_after`)
and sends it on. The log carries the change; a listener is only told *that* something committed (a wake:
Daphne's publisher in-process, the bridge's notifier to Daphne), never what, so nothing but a committed row
can reach a screen.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from devices.models import ChangeLogEntry
from devices.services.sql import HotCursor, hot_cursor, insert_sql

logger = logging.getLogger(__name__)

CommitListener = Callable[[], None]
PRUNE_CHUNK = 5_000  # rows per delete: the write lock is held briefly, the next tick takes the rest
LOG_COLUMNS = ("device", "device_code", "seq", "event", "body", "ward_code", "created_at")


class _Listeners:
    """The process's commit listeners; changed only by `change_log_listen` / `change_log_unlisten`."""

    installed: tuple[CommitListener, ...] = ()


def change_log_listen(listener: CommitListener) -> None:
    """Call `listener()` after every commit that appended changes (it must be cheap and never block)."""
    _Listeners.installed = (*_Listeners.installed, listener)


def change_log_unlisten(listener: CommitListener) -> None:
    """Stop calling `listener`."""
    _Listeners.installed = tuple(item for item in _Listeners.installed if item != listener)


def change_log_append(*, entries: Sequence[tuple[int, object]], cursor: HotCursor | None = None) -> None:
    """Append `(device pk, DeviceChange)` pairs to the log inside the current transaction; wake after commit.

    One prepared INSERT run per entry (executemany), each value prepared as the field's own
    `get_db_prep_save` would: `bulk_create` compiled the INSERT and built a model per entry on every call,
    about two thirds of this function's time on the bridge's hot path (`bench/README.md`, 2026-12-03).
    `cursor`: the caller's, shared by its statements (`hot_cursor`).
    """
    if not entries:
        return
    with hot_cursor(cursor) as cursor:
        wrapper = cursor.wrapper
        created_at = wrapper.ops.adapt_datetimefield_value(timezone.now())
        prepare_body = ChangeLogEntry._meta.get_field("body").get_db_prep_save
        rows = [(device_pk, change.device_id, change.seq, change.event, prepare_body(change.body, wrapper),
                 change.ward_code, created_at) for device_pk, change in entries]  # fmt: skip
        cursor.executemany(insert_sql(ChangeLogEntry, LOG_COLUMNS), rows)
    if _Listeners.installed and not _told_on_commit(wrapper):
        transaction.on_commit(_committed, robust=True)


def _told_on_commit(wrapper) -> bool:
    """Whether this transaction already tells the listeners at its commit: one wake per commit, not one per append
    (an alarm appends three times: its alarm, error and notification; each wake is a frame to Daphne and a read).

    Read from Django's own list of the transaction's callbacks, so it stays true under savepoints: a callback
    registered inside a savepoint that rolls back leaves the list with it, and the next append registers again.
    """
    return any(func is _committed for _sids, func, _robust in wrapper.run_on_commit)


def _committed() -> None:
    for listener in _Listeners.installed:
        listener()


def change_log_prune(*, before: datetime, limit: int = PRUNE_CHUNK) -> int:
    """Delete up to `limit` of the oldest entries recorded before `before`; returns how many went."""
    oldest = ChangeLogEntry.objects.order_by("id").values_list("id", "created_at").first()
    if oldest is None or oldest[1] >= before:
        return 0  # one index look-up when there is nothing to do
    cutoff = (
        ChangeLogEntry.objects.filter(id__lt=oldest[0] + limit, created_at__lt=before)
        .order_by("-id").values_list("id", flat=True).first()
    )  # fmt: skip
    if cutoff is None:
        return 0
    deleted, _ = ChangeLogEntry.objects.filter(id__lte=cutoff).delete()
    logger.debug("change log pruned", extra={"deleted": deleted})
    return deleted
