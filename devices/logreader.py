"""Reading the change log on the publisher's event loop, without the ORM and without a thread hop (SQLite).

`devices.selectors.change_log_after` reads the same rows through the ORM; the publisher would have to run it
on a thread (Django refuses sync database calls on an event loop), which costs two thread hand-offs per
wake: under load each waits for the GIL's switch interval (5 ms), and the ORM's own work was a fifth of
Daphne's CPU at 100 changes/s (`bench/README.md`, "Publisher"). On SQLite in WAL mode a reader never waits
for a writer, and reading a few rows by primary key takes tens of microseconds, so the publisher reads on
its loop with a plain read-only `sqlite3` connection of its own. `busy_timeout` 0: in the rare case SQLite
reports busy (a WAL recovery), the read fails at once and the publisher tries again shortly; the loop is
never held waiting for a lock.
"""

import json
import sqlite3
from datetime import UTC, datetime

from django.db import connections

from devices.models import ChangeLogEntry


def _statement() -> str:
    log = ChangeLogEntry._meta
    column = {field.name: field.column for field in log.concrete_fields}
    return (
        f'SELECT l."{column["id"]}", l."{column["device"]}", l."{column["device_code"]}", l."{column["seq"]}", '
        f'l."{column["event"]}", l."{column["body"]}", l."{column["ward_code"]}", l."{column["created_at"]}" '
        f'FROM "{log.db_table}" l WHERE l."{column["id"]}" > ? ORDER BY l."{column["id"]}" LIMIT ?'
    )


class SqliteLogReader:
    """`change_log_after` for the event loop: the same tuples (`CHANGE_LOG_COLUMNS`), read without the ORM."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.statement = _statement()
        self._db: sqlite3.Connection | None = None

    @classmethod
    def for_default_database(cls) -> "SqliteLogReader | None":
        """A reader of the default database when it is an SQLite file, else None (read through the ORM)."""
        settings_dict = connections["default"].settings_dict
        if connections["default"].vendor != "sqlite" or str(settings_dict["NAME"]).startswith(("file:", ":memory:")):
            return None
        return cls(str(settings_dict["NAME"]))

    def after(self, *, after_id: int, limit: int) -> list[tuple]:
        """Committed rows after `after_id`, oldest first (raises `sqlite3.Error` when the file is busy or gone)."""
        if self._db is None:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=0, isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
        try:
            rows = self._db.execute(self.statement, (after_id, limit)).fetchall()
        except sqlite3.Error:
            self.close()  # the next read opens afresh
            raise
        return [
            (entry_id, device_pk, device_id, seq, event, json.loads(body), ward_code, _utc(created_at))
            for entry_id, device_pk, device_id, seq, event, body, ward_code, created_at in rows
        ]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _utc(stored: str) -> datetime:
    """Django stores an aware datetime on SQLite as UTC text without an offset."""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC)
