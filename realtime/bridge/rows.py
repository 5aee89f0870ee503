"""Per-row guard of the housekeeping checks and the command outbox: a row one cannot handle never stops the others.

A row whose handling raises anything but a database error (a row the code cannot handle, every tick alike) is
logged once with its check and id (`housekeeping row failed`), counted in
`pumpstream_bridge_housekeeping_row_failures_total{check}`, and skipped: the check's next pages leave it out (the
query excludes it), for ROW_SKIP_S after its first failure, doubled per failure up to ROW_SKIP_MAX_S. After
ROW_FAILURES_DEAD failures it is dead-lettered once (source `housekeeping`, reason `row_failed`, topic
`<check>/<id>`, logged at error level) and is still tried every ROW_SKIP_MAX_S, silently (counted), so a row
that can be handled again (an alarm to escalate) is never given up for good. A row handled at last is forgotten
(logged). A database error ends the tick as before (the worker retries it). The rows remembered are bounded per
check (ROWS_REMEMBERED, the oldest forgotten first: tried again, logged again).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.services.records import dead_letter_record
from devices.services.rows import RowId, RowRun
from realtime import metrics
from realtime.bridge.guard import INFRASTRUCTURE_ERRORS

logger = logging.getLogger(__name__)

ROW_SKIP_S = 5.0
ROW_SKIP_MAX_S = 300.0
ROW_FAILURES_DEAD = 5
ROWS_REMEMBERED = 500  # per check: also the most ids a check's query excludes


@dataclass
class RowFault:
    """A row that failed: how often in a row, until when it is skipped, the last error."""

    failures: int
    until: datetime
    error: str


class RowGuard:
    """The rows of every housekeeping check that failed for themselves, and how each row is run."""

    def __init__(self) -> None:
        self.faults: dict[tuple[str, RowId], RowFault] = {}

    def skipped(self, check: str, now: datetime) -> set[RowId]:
        """The ids of this check's rows to leave out now (failed, their skip not over)."""
        return {row_id for (name, row_id), fault in self.faults.items() if name == check and fault.until > now}

    def runner(self, now: datetime) -> RowRun:
        """A `devices.services.rows.RowRun` guarding each row as of `now`."""
        return lambda check, row_id, handle: self.run(check, row_id, handle, now)

    def run(self, check: str, row_id: RowId, handle: Callable[[], int], now: datetime) -> int:
        """Handle one row, guarded; 0 when skipped or failed (a database error is raised: the tick's)."""
        fault = self.faults.get((check, row_id))
        if fault is not None and fault.until > now:
            return 0
        try:
            result = handle()
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:  # the per-row guarded catch-all: logged once per row, counted, skipped a while
            if self._failed(check, row_id, exc, now):
                logger.exception(
                    "housekeeping row failed: skipped for a while", extra={"check": check, "row_id": row_id}
                )
            return 0
        if fault is not None:
            del self.faults[(check, row_id)]
            logger.info("housekeeping row handled again", extra={"check": check, "row_id": row_id})
            metrics.HOUSEKEEPING_ROWS_SKIPPED.labels(check=check).dec()
        return result

    def forget(self, check: str, row_id: RowId) -> None:
        """Drop a failed row that left the check's rows some other way (a command failed at its deadline)."""
        if self.faults.pop((check, row_id), None) is not None:
            metrics.HOUSEKEEPING_ROWS_SKIPPED.labels(check=check).dec()

    def _failed(self, check: str, row_id: RowId, exc: Exception, now: datetime) -> bool:
        """Count, skip and, after ROW_FAILURES_DEAD failures, dead-letter a row; True at its first failure."""
        metrics.HOUSEKEEPING_ROW_FAILURES.labels(check=check).inc()
        extra = {"check": check, "row_id": row_id}
        fault = first = self.faults.get((check, row_id))
        if fault is None:
            self._forget_oldest(check)
            fault = self.faults[(check, row_id)] = RowFault(0, now, "")
            metrics.HOUSEKEEPING_ROWS_SKIPPED.labels(check=check).inc()
        fault.failures += 1
        fault.error = f"{type(exc).__name__}: {exc}"[:300]
        fault.until = now + timedelta(seconds=min(ROW_SKIP_MAX_S, ROW_SKIP_S * 2 ** (fault.failures - 1)))
        if fault.failures == ROW_FAILURES_DEAD:
            logger.error("housekeeping row dead-lettered: it failed %d times", fault.failures, extra=extra)
            dead_letter_record(topic=f"{check}/{row_id}", source="housekeeping", reason="row_failed",
                               detail=f"failed {fault.failures} times; last: {fault.error}")  # fmt: skip
        return first is None

    def _forget_oldest(self, check: str) -> None:
        mine = [key for key in self.faults if key[0] == check]
        if len(mine) >= ROWS_REMEMBERED:
            del self.faults[mine[0]]
            metrics.HOUSEKEEPING_ROWS_SKIPPED.labels(check=check).dec()
