"""The publisher: ONE per Daphne process, it reads the change log in commit order and hands it to the fan-out.

Every committed change of every pump, whichever process committed it (the bridge, a page, an admin
action, housekeeping), is a row of the change log (`devices.models.ChangeLogEntry`, written in the
change's own transaction). The publisher keeps a position (the last log `id` it read) and, when woken,
reads what committed after it, oldest first, and calls `fanout.publish` for each row, so per pump the
fan-out sees `seq` order. Nothing is held or re-ordered: a row is only visible once its transaction has
committed, and a pump's next `seq` can only be taken once the transaction that took the previous one
has committed (the pump's row lock), so the rows of one pump appear in `seq` order with no gap.

Wakes: Daphne's own commits wake it in-process (`devices.services.changelog.change_log_listen`); the
bridge wakes it over the internal namespace (a bare `wake`, no change in it); on PostgreSQL every commit
that appended changes NOTIFYs and each Daphne LISTENs (`realtime.pg_notify`), so any process's commit
wakes every publisher; a slow safety poll (`PUBLISHER_POLL_S`) catches a lost wake. What made it read is
counted (`pumpstream_realtime_publisher_changes_total{woken_by}`: commit, bridge, notify, poll).

Position and order per database: SQLite admits one writer at a time (`IMMEDIATE` transactions; a deferred one
too holds the one write lock from its first write to its end), so a log `id` is taken and committed before the
next writer begins: `id` order is commit order and `id > position` never misses a row. A rolled-back insert
leaves a hole (`AUTOINCREMENT`) that no row will ever fill, never a gap that fills later: no gap is tracked there.
PostgreSQL allocates ids before commit, so a lower id can commit
after a higher one (two pumps' transactions, the first to insert the last to commit). So every id the
position passes over without a row is remembered as a *gap* and looked up again at each read, before the
rows after the position, until it fills (published then) or PostgreSQL says that no transaction that could
still fill it is open (`_settle`): one begun before the id was passed over has ended, so a rolled-back
transaction's or a pruned row's id is forgotten, and one still open (however long: a bridge paused mid-batch,
a lock wait) is waited for. A time limit forgot the ids of transactions that committed after it (review 38: a
high alarm committed 35 s after its id was passed over reached no screen). Per pump this keeps `seq` order: a pump's
next change is inserted only after its previous change's transaction committed (the pump's row lock), so
its id is higher and it is never read before the one it follows. The gaps are looked up AFTER each read past
the position and published before that read's rows: a gap row that committed before any row of that read
is in the later lookup (looked up before, a gap row committing between the two reads was missed while the
pump's next change, read past the position, went out first; the gap row found next was then dropped as
already published, a `seq` lost on every Daphne). A gap row found there that committed after the read has
no later change of its pump in it (that change would have waited for the gap row's commit).

Memory is bounded: past `GAPS_MAX` ids the oldest gaps are given up, loudly (an error in the log,
`pumpstream_realtime_publisher_gaps_given_up_total`), into one id range read whole once a second (each pump's
rows already published skipped by `seq`) until it settles too. A row committing there goes out as its pump's next
`seq`; or, if that pump's next change was read first, not at all, that change's `seq` jump having made its
subscribers resubscribe (their snapshots hold both).
"""

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from devices.changelog_selectors import (
    change_log_after,
    change_log_between,
    change_log_extent,
    change_log_these,
    transactions_horizon,
)
from devices.logreader import SqliteLogReader
from protocol.events import DeviceChange
from realtime import server_metrics
from realtime.fanout import FanOut, fanout

logger = logging.getLogger(__name__)

READ_LIMIT = 2_000  # rows per read; a backlog is read in several, without holding the loop meanwhile
LOOP_READ_LIMIT = 500  # rows per read on the loop itself (SQLite): a backlog yields to other tasks between reads
BUSY_RETRY_S = 0.01  # SQLite said busy (rare in WAL mode): read again this soon
GAP_SETTLE_S = 5.0  # an id passed over this long is asked about: has every transaction that could fill it ended?
SETTLE_EVERY_S = 1.0  # at most one such question a second (and none while every gap is younger)
START_WINDOW = 1_000  # ids below the position at start that may still be uncommitted
GAPS_MAX = 10_000  # ids passed over looked up one by one at each read; beyond, the oldest are read as one range


class ChangePublisher:
    """Reads the change log from its position and publishes each row to the fan-out, in `id` order."""

    def __init__(self, fanout: FanOut, *, poll_s: float | None = None, read_limit: int = READ_LIMIT) -> None:
        self.fanout = fanout
        self.poll_s = poll_s if poll_s is not None else settings.PUMPSTREAM["PUBLISHER_POLL_S"]
        self.read_limit = read_limit
        self.position: int | None = None
        self.published = 0
        self.skipped = 0
        self.late = 0  # rows published after rows with higher ids (committed out of id order)
        self.rewinds = 0  # times the log's ids went back below the position (`_rewound`)
        self.settled = 0  # gaps forgotten once no transaction that could fill them was open (rolled back, pruned)
        self.given_up = 0  # gaps moved into `_given_up` (over GAPS_MAX)
        self._start_position = 0  # the position at start: the ids below it may be in subscribers' snapshots
        self._gaps: dict[int, Gap] = {}  # id passed over without a row -> when and its horizon, oldest first
        self._given_up: Gap | None = None  # the range of ids given up over GAPS_MAX, read whole until settled
        self._next_settle = 0.0  # monotonic: the next `_settle` question
        self._track_gaps = False  # on PostgreSQL only (set at start): SQLite commits ids in order
        self._last_seq: dict[int, int] = {}  # device pk -> seq last published (one entry per pump)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._wake_pending = False
        self._woken_by = "commit"
        self._last_read = 0.0  # loop time of the last read: the safety poll reads `poll_s` after it
        self._counted = 0  # `published` already counted in PUBLISHER_WOKEN
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="change-publisher")
        self._loop_reader: SqliteLogReader | None = None  # set at start on SQLite: reads without a thread hop

    def start(self) -> None:
        """Start on the running loop (idempotent): position at the log's end, then publish what follows."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._track_gaps = connection.vendor == "postgresql"
        self._wake, self._ready = asyncio.Event(), asyncio.Event()
        self._task = self._loop.create_task(self._run())

    async def ready(self) -> None:
        """Wait until the position is known (a snapshot taken before then could miss changes)."""
        self.start()
        await self._ready.wait()

    def wake(self, by: str = "commit") -> None:
        """Read the log now (from any thread; cheap when a wake is already pending); `by` labels the metric."""
        if self._wake_pending or self._loop is None or self._loop.is_closed():
            return
        self._wake_pending = True
        self._woken_by = by
        if _running_loop() is self._loop:  # the bridge's wake arrives on the loop: no hop through the self-pipe
            self._wake.set()
            return
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop closed meanwhile (shutdown)
            self._wake_pending = False

    async def _run(self) -> None:
        while self.position is None:
            try:
                self.position = (await self._read(change_log_extent))[1]
            except DatabaseError as exc:
                logger.warning("change log unreadable; retrying: %s", exc)
                await asyncio.sleep(self.poll_s)
        if settings.PUMPSTREAM["PUBLISHER_READ_ON_LOOP"]:
            self._loop_reader = SqliteLogReader.for_default_database()
        self._start_position = self.position
        if self._track_gaps:
            await self._gaps_at_start()
        self._ready.set()
        logger.info("publishing the change log",
                    extra={"position": self.position, "on_loop": self._loop_reader is not None})  # fmt: skip
        self._last_read = self._loop.time()
        self._loop.call_later(self.poll_s, self._poll)
        while True:
            await self._wake.wait()
            try:
                await self.catch_up(by=self._woken_by)
            except Exception:  # guarded: the publisher must outlive any one bad row; the next wake goes on
                logger.exception("publishing the change log failed", extra={"position": self.position})

    def _poll(self) -> None:
        """The safety poll: a read `poll_s` after the last, whatever woke that; one timer per poll, none per wake.

        (`asyncio.wait_for` on the wake with the poll as its timeout made a task and a timer at every wake.)
        """
        due = self._last_read + self.poll_s
        if self._loop.time() >= due:
            self.wake("poll")
            due = self._loop.time() + self.poll_s
        self._loop.call_at(due, self._poll)

    async def _gaps_at_start(self) -> None:
        """The ids without a row among the last `START_WINDOW` before the position: transactions still open."""
        try:
            rows = await self._read(change_log_after, after_id=max(0, self.position - START_WINDOW), limit=START_WINDOW)
        except DatabaseError as exc:
            logger.warning("reading the change log failed: %s", exc)
            return
        present = {row[0] for row in rows}
        now = time.monotonic()
        self._gaps.update((entry_id, Gap(now)) for entry_id in range(max(1, self.position - START_WINDOW + 1),
                          self.position) if entry_id not in present)  # fmt: skip

    async def catch_up(self, *, by: str = "commit") -> int:
        """Publish every row committed after the position; returns how many (counted by what woke it: `by`)."""
        self._wake.clear()
        self._wake_pending = False
        self._last_read = self._loop.time()
        try:
            return await self._catch_up(0, by_poll=by == "poll")
        finally:
            if self.published > self._counted:
                server_metrics.PUBLISHER_WOKEN.labels(by).inc(self.published - self._counted)
                self._counted = self.published

    async def _catch_up(self, count: int, *, by_poll: bool = False) -> int:
        while True:
            limit = min(self.read_limit, LOOP_READ_LIMIT) if self._loop_reader else self.read_limit
            try:
                if self._loop_reader is not None:
                    rows = self._loop_reader.after(after_id=self.position, limit=limit)
                else:
                    rows = await self._read(change_log_after, after_id=self.position, limit=limit)
            except sqlite3.Error as exc:  # busy or gone: again shortly (the loop never waits on a lock)
                logger.debug("reading the change log on the loop failed: %s", exc)
                self._loop.call_later(BUSY_RETRY_S, self.wake)
                return count
            except DatabaseError as exc:  # the safety poll tries again
                logger.warning("reading the change log failed: %s", exc)
                return count
            if self._gaps or self._given_up:  # looked up after the read past the position, published before its rows
                count += await self._fill_gaps()  # (see above)
            self._publish(rows, timezone.now())
            count += len(rows)
            if not rows and by_poll and await self._rewound():
                continue  # read again from the log's new start
            if len(rows) < limit:
                return count
            await asyncio.sleep(0)  # a backlog: let the loop's other work in between reads

    async def _rewound(self) -> bool:
        """Whether the log's ids went back below the position (a restore, a table rebuilt, a sequence reset): then
        every row until the ids pass the old position would never be read. Start again from the log's lowest id,
        forgetting what was published per pump row (row ids may be handed out again too)."""
        try:
            lowest, highest, _ = await self._read(change_log_extent)
        except DatabaseError:
            return False
        if not highest or highest >= self.position:
            return False
        logger.error("the change log went back below the publisher's position; reading it from its start",
                     extra={"position": self.position, "highest": highest, "lowest": lowest})  # fmt: skip
        self.position = self._start_position = lowest - 1  # every row above is published anew
        self._last_seq.clear()
        self._gaps.clear()
        self._given_up = None
        self.rewinds += 1
        return True

    async def _fill_gaps(self) -> int:
        """Publish the rows of ids passed over that have committed since; forget the gaps `_settle` found final."""
        settled = await self._settle()
        given_up = self._given_up if settled is not None else None  # read whole once a second (`_settle`'s pace)
        try:
            rows = await self._read(change_log_these, ids=list(self._gaps)) if self._gaps else []
            if given_up is not None:
                ranged = await self._read(change_log_between, first=given_up.first, last=given_up.last)
                rows = sorted({row[0]: row for row in (*rows, *ranged)}.values())
        except DatabaseError as exc:
            logger.warning("reading the change log failed: %s", exc)
            return 0
        for row in rows:
            self._gaps.pop(row[0], None)
        for entry_id in settled or ():  # looked up once more above, after their transactions ended: empty for good
            if self._gaps.pop(entry_id, None) is not None:
                self.settled += 1
        if given_up is not None and given_up.final:
            self._given_up = None
        late = self._publish(rows, timezone.now(), advance=False)
        self.late += late
        return late

    async def _settle(self) -> list[int] | None:
        """The gaps no transaction can fill any more (None: not asked now; at most every `SETTLE_EVERY_S`).

        PostgreSQL's snapshot says which transactions are still running: `xmax`, the first transaction id not yet
        handed out, and `xmin`, the oldest one still running. A gap older than `GAP_SETTLE_S` gets the `xmax` of
        the first question after (its horizon): the transaction that took its id began before it was passed over,
        and its insert has long had a transaction id, lower than that (an id is taken by the insert that uses it:
        the log's identity sequence caches none, CACHE 1, so no session holds ids to use in a later transaction).
        Once `xmin` reaches the horizon, every transaction below it has committed or rolled back: a last lookup
        (right after) finds the row or there is none. No clock, no session list (that shows another role's
        sessions to no one but a superuser).
        """
        now = time.monotonic()
        if now < self._next_settle or not self._aging(now):
            return None
        self._next_settle = now + SETTLE_EVERY_S
        try:
            oldest_running, next_id = await self._read(transactions_horizon)
        except DatabaseError as exc:
            logger.warning("reading the database's running transactions failed: %s", exc)
            return None
        settled = []
        for entry_id, gap in self._gaps.items():
            if now - gap.since < GAP_SETTLE_S:
                break  # oldest first: the rest are younger
            if gap.horizon is not None and oldest_running >= gap.horizon:
                settled.append(entry_id)
            elif gap.horizon is None:
                gap.horizon = next_id
        given_up = self._given_up
        if given_up is not None and now - given_up.since >= GAP_SETTLE_S:
            if given_up.horizon is None:
                given_up.horizon = next_id
            elif oldest_running >= given_up.horizon:
                given_up.final = True
        return settled

    def _aging(self, now: float) -> bool:
        """Whether a gap is old enough to ask about (the oldest is first) or ids were given up."""
        oldest = next(iter(self._gaps.values()), None)
        return self._given_up is not None or (oldest is not None and now - oldest.since >= GAP_SETTLE_S)

    def _passed_over(self, first: int, last: int) -> None:
        now = time.monotonic()
        if last - first > GAPS_MAX:  # a jump past more ids than that: its lower ones given up at once
            self._give_up(now, first, last - GAPS_MAX - 1, last - GAPS_MAX - first)
            first = last - GAPS_MAX
        for entry_id in range(first, last):
            self._gaps[entry_id] = Gap(now)
        if len(self._gaps) > GAPS_MAX:  # the oldest gaps above the start's position (see `_give_up`)
            over = [entry_id for entry_id in self._gaps if entry_id > self._start_position]
            over = over[: len(self._gaps) - GAPS_MAX]
            for entry_id in over:
                del self._gaps[entry_id]
            if over:  # (always: the start's gaps are fewer than GAPS_MAX)
                self._give_up(now, min(over), max(over), len(over))

    def _give_up(self, now: float, first: int, last: int, count: int) -> None:
        """Over `GAPS_MAX`: gaps join the range read whole once a second, never forgotten while they may fill.

        A row of that range is published unless its pump's `seq` was published already (`_publish`), so only ids
        above the start's position go there: below it, a pump this publisher has not published yet has rows the
        subscribers' snapshots hold (the start's own gaps, at most `START_WINDOW`, stay looked up one by one).
        """
        if self._given_up is None:  # once per episode in the log; every id in the metric
            logger.error("more change-log ids passed over uncommitted than the publisher looks up one by one; the "
                         "oldest are read as a range once a second until their transactions end (one left open?)",
                         extra={"given_up": count, "first": first, "last": last})  # fmt: skip
        given_up = self._given_up or Gap(now, first=first, last=last)
        given_up.first, given_up.last = min(given_up.first, first), max(given_up.last, last)
        given_up.since, given_up.horizon, given_up.final = now, None, False  # asked about afresh: new ids joined
        self._given_up = given_up
        self.given_up += count
        server_metrics.PUBLISHER_GAPS_GIVEN_UP.inc(count)

    def _publish(self, rows: list[tuple], now: datetime, *, advance: bool = True) -> int:
        """Hand the rows to the fan-out in `seq` order per pump, skipping re-read ones; how many were handed."""
        published = 0
        for entry_id, device_pk, device_id, seq, event, body, ward_code, created_at in rows:
            if advance:
                if entry_id > self.position + 1 and self._track_gaps:
                    self._passed_over(self.position + 1, entry_id)
                self.position = entry_id
            last = self._last_seq.get(device_pk)
            if last is not None and seq <= last and not advance:
                continue  # already published (a gap row re-read)
            if last is not None and seq <= last:  # a row past the position is new: a pump row id handed out again
                logger.warning("a pump row id's seq went back; publishing it as a new registration's",
                               extra={"device_id": device_id, "seq": seq, "last": last})  # fmt: skip
                last = None
            if last is not None and seq != last + 1:
                self.skipped += seq - last - 1
                logger.warning("a pump's seq skipped (the change log pruned past the publisher, or a row of the ids "
                               "given up over GAPS_MAX not read yet); subscribers resynchronise",
                               extra={"device_id": device_id, "missing_from": last + 1, "seq": seq})  # fmt: skip
            self._last_seq[device_pk] = seq
            self.fanout.publish(DeviceChange(device_id, seq, event, body, ward_code, device_pk))
            server_metrics.PUBLISHER_LAG.observe(max(0.0, (now - created_at).total_seconds()))
            published += 1
        self.published += published
        return published

    async def _read(self, reader, **kwargs):
        return await self._loop.run_in_executor(self._reader, _read_committed, reader, kwargs)


@dataclass(slots=True)
class Gap:
    """An id passed over without a row (or, `first`..`last`, the range given up): since when (monotonic), the
    database's next transaction id when first asked about it (`horizon`), and whether every transaction below that
    has ended (`final`, the range's: looked up once more, then forgotten)."""

    since: float
    horizon: int | None = None
    final: bool = False
    first: int = 0
    last: int = 0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _read_committed(reader, kwargs: dict):
    """Run a selector on the publisher's own thread (never the shared sync thread of snapshot reads)."""
    try:
        return reader(**kwargs)
    except DatabaseError:
        connection.close()  # this thread's connection; the next read opens a fresh one
        raise


publisher = ChangePublisher(fanout)
