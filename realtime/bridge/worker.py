"""The bridge's one database thread: fair batches, one transaction each, acknowledged after commit; then ticks."""

import gc
import logging
import queue
import threading
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, close_old_connections
from django.utils import timezone

from devices.services.changelog import change_log_listen, change_log_unlisten
from devices.services.heard import AHEAD_TOLERANCE_S
from devices.services.records import bridge_heartbeat, bridge_started
from devices.services.schema import migrations_unapplied
from realtime import metrics
from realtime.bridge.batch import BatchIngest
from realtime.bridge.budgets import Budget, PumpBudgets
from realtime.bridge.check_schedule import PARTS
from realtime.bridge.checkpoints import WalCheckpointer
from realtime.bridge.commit import Committer
from realtime.bridge.fair import FairQueue, holds_calm_alarm
from realtime.bridge.flood import ProgressFloodGuard, TimeAway, times_away_open
from realtime.bridge.guard import FenceLost, schema_faults_watch
from realtime.bridge.ingest import InboundMessage
from realtime.bridge.link import BrokerLink
from realtime.bridge.notifier import PublisherWaker
from realtime.bridge.rereads import Rereads
from realtime.bridge.session_watch import CONTESTED_FOR_S
from realtime.bridge.shared import bridge_parts

logger = logging.getLogger(__name__)

# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). paho's thread gives
# the GIL up at every socket read; while the worker thread is busy committing it got it back only after the
# default 5 ms each time, so under a flood it read the broker's backlog at a fraction of its speed and every
# other pump's message waited behind it. With 0.5 ms the bridge had a 3,000-message flood read, admitted and
# acknowledged in 0.56-0.97 s instead of 1.37-2.00 s (3 alternated pairs, bench/README.md), CPU per routine
# message within the noise (+1-3 %).
GIL_SWITCH_INTERVAL_S = 0.0005
# A turn of the worker's loop later than this share of HEARTBEAT_TIMEOUT_S after the last was a stall of the bridge
# (`Bridge.note_stall`): a pump reporting at least this often cannot look silent for a shorter one. Turns take well
# under a second at work (a 3,000-message flood: 0.56-0.97 s, bench/README.md).
STALL_AFTER = 0.5
SCHEMA_RECHECK_S = 2.0  # how often a bridge started before `migrate` looks again
SCHEMA_LOG_EVERY_S = 60.0  # and says again at error level that it waits


class BridgeFault(RuntimeError):
    """A fault the worker cannot go on from (a thread of its own ended): the process exits to be restarted."""


@dataclass(frozen=True)
class BatchLimits:
    """A batch closes at `max_messages`, or when it has waited as long as the previous commit took (at most
    `window_s`) after its first message, whichever comes first.

    Adaptive: when commits are cheap (light load) a message waits about nothing; when they are slow
    (heavy load) a batch gathers more messages, so the fixed cost of a transaction is shared and the
    bridge leaves CPU to Daphne. `window_s` 0 (the default, BRIDGE_BATCH_WINDOW_MS): never wait, a batch
    is what queued during the previous commit (lowest latency; `bench/README.md` has both measured).
    """

    max_messages: int = 500  # half the Receive Maximum, so the broker keeps sending while a batch commits
    intake_max: int = 10_000  # what one turn moves from the inbox to the fair queue (the window bounds it anyway)
    window_s: float = 0.0
    tick_s: float = 0.1  # the outbox: a clinician's command waits at most this long to be published
    housekeeping_s: float = 0.5  # time-driven checks (timeouts of 10 s and more): scans of every pump


class Bridge:
    """Wires the broker link, the batch worker, the outbox, housekeeping, heartbeat and the publisher's waker."""

    def __init__(self, *, limits: BatchLimits | None = None, name: str = "bridge", index: int = 0) -> None:
        self.limits = limits or BatchLimits()
        self.name = name
        self.inbox: queue.SimpleQueue[InboundMessage] = queue.SimpleQueue()
        self._stop = threading.Event()
        self.link, self.outbox, self.housekeeping = bridge_parts(
            on_inbound=self.inbox.put, on_puback=lambda mid: self.outbox.acked.put(mid), name=name, index=index,
            on_reconnected=self._reconnected,
        )  # fmt: skip
        self.guard = ProgressFloodGuard(rate_per_s=settings.PUMPSTREAM["PROGRESS_FLOOD_PER_S"],
                                        burst=settings.PUMPSTREAM["PROGRESS_FLOOD_BURST"])  # fmt: skip
        self.budgets = pump_budgets()
        self.ingest = BatchIngest(self.guard, self.budgets)
        self.waiting = FairQueue(self.ingest)  # received, admitted or shed, not yet committed (unacknowledged)
        self.housekeeping.waiting_since = self.waiting.oldest_received  # a pump waiting here was heard
        self.housekeeping.broker_started = lambda: self.link.broker_started_at  # pumps' Wills held since then
        self.committer = Committer(ingest=self.ingest, on_committed=self._committed, stop=self._stop,
                                   max_tries=settings.PUMPSTREAM["BRIDGE_REDELIVERY_TRIES"],
                                   fence=self.link.fence)  # fmt: skip
        self._committed_now: set[int] = set()  # ids of the messages of the batch being committed that committed
        self.waker = PublisherWaker(settings.REALTIME_INTERNAL_URL, settings.BRIDGE_INTERNAL_SECRET)
        self.checkpointer = WalCheckpointer()
        self.rereads = Rereads()  # pumps turned away as unregistered, read again from the broker once registered
        self.stats: Counter[str] = Counter()
        self._last_commit_s = 0.0
        self._next_tick = 0.0
        self._next_housekeeping = 0.0  # the beat of the next part of the checks (`_housekeeping_parts_due`)
        self._housekeeping_part = 0  # the part of the checks whose turn comes next (`check_schedule.PARTS`)
        self._next_heartbeat = 0.0
        self._heartbeat_connected_since = None
        self._heartbeat_contested = False
        self._turned_at: tuple[float, datetime] | None = None  # the last turn's clocks (monotonic, wall): stalls

    def run(self) -> None:
        """Run until `stop()`: the link, the waker and the checkpoints in threads, the database work in this one."""
        own_checkpoints = self.checkpointer.install()  # before the first query: no commit of ours checkpoints
        schema_faults_watch()  # a missing table or column: the database's fault, retried, never a message's
        if not self.schema_current():  # stopped while waiting for `migrate`
            if own_checkpoints:
                self.checkpointer.uninstall()
            return
        change_log_listen(self.waker.committed)  # after each commit that logged changes: wake Daphne's publisher
        away_since = bridge_started(name=self.name)  # started again: away from the broker since it last held it
        if isinstance(self.link, BrokerLink):  # (slots: a slot's earlier owner is not known)
            self.link.lost_at = away_since
        gc.freeze()  # start-up objects (Django, modules) leave the collector's scans: ~15 % less CPU per batch
        parts = [("mqtt", self.link.run), ("wake", self.waker.run)]
        if own_checkpoints:
            parts.append(("checkpoints", self.checkpointer.run))
        threads = [threading.Thread(target=target, name=name, daemon=True) for name, target in parts]
        for thread in threads:
            thread.start()
        try:
            while not self._stop.is_set():
                self.step()
                for thread in threads:
                    if not thread.is_alive():
                        raise BridgeFault(f"the {thread.name} thread ended")
        except Exception:  # guarded: logged with its cause; the process exits non-zero and is restarted
            logger.exception("bridge worker failed; exiting to be restarted (the broker keeps what is unacknowledged)")
            raise
        finally:
            self.link.stop()
            self.waker.stop()
            self.checkpointer.stop()
            for thread in threads:
                thread.join(timeout=5)
            change_log_unlisten(self.waker.committed)
            if own_checkpoints:
                self.checkpointer.uninstall()
            self._say_stopped()

    def schema_current(self) -> bool:
        """Wait, consuming nothing, until the database has every migration of this code; False if stopped meanwhile.

        New code started before `manage.py migrate` (a deploy in the wrong order, systemd restarting a crashed bridge
        onto code installed but not migrated yet) would fail on each statement naming what the database lacks; the
        broker keeps the pumps' messages meanwhile. The heartbeat says the broker is not held and why (`schemaBehind`),
        so `/readyz`, `/ops/` and every screen show monitoring degraded until `migrate` has run."""
        said_at = None
        while not self._stop.is_set():
            unapplied = migrations_unapplied()
            metrics.SCHEMA_MIGRATIONS_UNAPPLIED.set(len(unapplied))
            if not unapplied:
                if said_at is not None:
                    logger.warning("database schema now matches the code: the bridge starts")
                return True
            if said_at is None or time.monotonic() - said_at >= SCHEMA_LOG_EVERY_S:
                said_at = time.monotonic()
                logger.error("database schema behind the code: %d migrations not applied (%s); run `manage.py migrate`."
                             " The bridge consumes nothing until then (the broker keeps the pumps' messages)",
                             len(unapplied), ", ".join(unapplied[:3]))  # fmt: skip
            self._say_schema_behind(unapplied)
            self._stop.wait(SCHEMA_RECHECK_S)
        return False

    def _say_schema_behind(self, unapplied: list[str]) -> None:
        try:
            stats = {"schemaBehind": unapplied[:10], "metrics": metrics.registry_snapshot()}
            bridge_heartbeat(broker_connected=False, stats=stats, name=self.name)
        except Exception:  # the heartbeat's own table may be what is missing: its age then says it
            logger.warning("could not record that the bridge waits for `migrate`", exc_info=True)

    def _say_stopped(self) -> None:
        """The last heartbeat says the broker is no longer held, and why (`stopped`): the screens show monitoring
        degraded from this moment, not once the heartbeat has aged past BRIDGE_STALE_AFTER_S (all a crash can leave),
        unless other bridges hold the broker (`selectors.latest_bridge`: they take this one's slots over)."""
        try:
            bridge_heartbeat(broker_connected=False, stats={**self.heartbeat_stats(), "stopped": True}, name=self.name)
        except Exception:  # the database may be why the bridge stops: the aging heartbeat says it then
            logger.warning("could not record the bridge's stop", exc_info=True)

    def step(self) -> None:
        """One turn of the loop: what arrived joins the fair queue, whose batches (`fair.py`: the calm pumps',
        the shed messages, the flooding pumps' share) are committed and acknowledged; then the periodic work.
        Only messages of slots this process still holds are committed (`slots.py`; all of them with one bridge)."""
        self.link.between_batches()
        clock = time.monotonic()
        self.note_stall(clock)  # a stall between two turns: told before `applied_until` below
        started = timezone.now()
        arrived = self.collect()
        self.rereads.mark(arrived)
        self.waiting.add(self.link.owned(arrived))
        batches = [held for batch in self.waiting.take(max_messages=self.limits.max_messages)
                   if (held := self.link.owned(batch))]  # fmt: skip
        if batches:
            self.settle_acks()
        for batch in batches:
            self.commit(batch)
        if self.inbox.empty() and not self.waiting and self.housekeeping.stall_over(clock):
            self.link.applied_until(started, clock=clock)  # (not in the grace after a stall: the broker holds more)
        self.maybe_tick()

    def stop(self) -> None:
        self._stop.set()

    def collect(self) -> list[InboundMessage]:
        """Wait briefly for a first message (not when some wait to be taken already: held reports alone wait for a
        later turn, `fair.py`), then for what arrives within the window (up to `max_messages`), then take whatever
        else the inbox holds (up to `intake_max`)."""
        try:
            ready = self.waiting.ready()
            batch = [self.inbox.get_nowait() if ready else self.inbox.get(timeout=self.limits.tick_s)]
        except queue.Empty:
            return []
        closes_at = time.monotonic() + min(self.limits.window_s, self._last_commit_s)
        while len(batch) < self.limits.intake_max:
            remaining = closes_at - time.monotonic() if len(batch) < self.limits.max_messages else 0
            try:
                batch.append(self.inbox.get(timeout=remaining) if remaining > 0 else self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def settle_acks(self) -> None:
        """PUBACKs read before this batch's messages are recorded before them (see `CommandOutbox.settle_acks`)."""
        if self.outbox.acked.empty():
            return
        try:
            self.outbox.settle_acks(timezone.now())
        except OperationalError as exc:
            logger.warning("PUBACKs not recorded before the batch: %s", exc)
            close_old_connections()
        except Exception:  # guarded as housekeeping is: the next tick retries, messages go on
            logger.exception("recording PUBACKs failed")

    def commit(self, batch: list[InboundMessage]) -> None:
        """Commit the batch (retried while the database is unavailable); acknowledge what committed. A part whose
        slot another bridge took over meanwhile was rolled back (`slots.SlotLinks.fence`): that slot is let go,
        its messages left unacknowledged for the new holder, and the rest of the batch committed. While a calm
        pump's alarm commits, the broker links read nothing (`link.ReadingPause`: a flood's reading slowed it)."""
        urgent = holds_calm_alarm(batch, self.waiting.flooding_this_turn)
        with self.link.reading.during() if urgent else nullcontext():
            self._commit(batch)

    def _commit(self, batch: list[InboundMessage]) -> None:
        self._committed_now = set()
        while batch:
            try:
                self.committer.commit(batch)
                break
            except FenceLost as lost:
                logger.warning("batch rolled back, unacknowledged: %s", lost, extra={"reason": "fence"})
                self.link.fence_lost(lost)
                batch = [message for message in self.link.owned(batch) if id(message) not in self._committed_now]
        self._last_commit_s = self.committer.last_commit_s

    def _committed(self, messages: list[InboundMessage], outcomes: Counter[str]) -> None:
        self._committed_now.update(map(id, messages))
        self.link.ack_many(messages)
        self._after_commit(messages, outcomes)

    def _after_commit(self, batch: list[InboundMessage], outcomes: Counter[str]) -> None:
        now = timezone.now()
        self.housekeeping.committed = True  # new deadlines may have come: every check wakes
        self.rereads.remember(batch)
        metrics.BATCH_SIZE.observe(len(batch))
        for message in batch:
            metrics.PROCESSING_SECONDS.observe(max(0.0, (now - message.received_at).total_seconds()))
        self.stats.update(outcomes)
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))

    def maybe_tick(self) -> None:
        """The outbox every tick, housekeeping every `housekeeping_s` (every tick while it is behind: a mass event
        worked off in pages of `housekeeping.PER_TICK`, this turn's batches between them), the heartbeat every
        BRIDGE_HEARTBEAT_S."""
        clock = time.monotonic()
        self.note_stall(clock)
        if clock < self._next_tick and self.outbox.acked.empty():
            return
        self._next_tick = clock + self.limits.tick_s
        try:
            now = timezone.now()
            try:
                self.outbox.tick(now)
            except OperationalError:
                raise
            except Exception:  # the outbox's own fault (its rows are guarded one by one): housekeeping still runs
                logger.exception("command outbox failed")
            self.rereads.check(self.link, clock=clock)
            if self.housekeeping.behind:  # a mass event's next page: every check at once, every tick
                self._next_housekeeping = clock + self.limits.housekeeping_s / PARTS
                self.housekeeping.tick(now, connected_since=self._grace_from(), clock=clock)
            elif clock >= self._next_housekeeping:  # a round of the checks every housekeeping_s, in PARTS parts
                parts = self._housekeeping_parts_due(clock)
                self.housekeeping.tick(now, connected_since=self._grace_from(), clock=clock, parts=parts)
            connected_since = self.link.connected_since
            contested = self.link.session_contested  # another client takes the session: not held, whatever it says
            relinked = connected_since != self._heartbeat_connected_since or contested != self._heartbeat_contested
            if clock >= self._next_heartbeat or relinked:
                self._next_heartbeat = clock + settings.PUMPSTREAM["BRIDGE_HEARTBEAT_S"]
                # a (re)connection, a loss or a takeover is written at once
                self._heartbeat_connected_since, self._heartbeat_contested = connected_since, contested
                bridge_heartbeat(broker_connected=self.link.connected.is_set() and not contested,
                                 stats=self.heartbeat_stats(), name=self.name,
                                 connected_since=connected_since)  # fmt: skip
        except OperationalError as exc:
            logger.warning("housekeeping skipped: %s", exc)
            close_old_connections()
        except Exception:  # guarded: a housekeeping fault must never stop message processing
            logger.exception("housekeeping failed")

    def _housekeeping_parts_due(self, clock: float) -> list[int] | None:
        """The parts of the checks whose turn has come by `clock` (None: every check): a part every
        `housekeeping_s / PARTS` on a fixed beat, so a round still takes `housekeeping_s` when the turns are longer
        than the beat (a large batch's commit: one part a turn of 0.3 s made a round 1.5 s; review 51). A round or
        more late (the first tick, a stall) runs every check and starts the beat again."""
        every = self.limits.housekeeping_s / PARTS
        parts: list[int] = []
        while clock >= self._next_housekeeping and len(parts) < PARTS:
            parts.append(self._housekeeping_part)
            self._housekeeping_part = (self._housekeeping_part + 1) % PARTS
            self._next_housekeeping += every
        if clock >= self._next_housekeeping:
            self._next_housekeeping = clock + every
        return None if len(parts) == PARTS else parts

    def _grace_from(self) -> datetime | None:
        """While the link is connected, the moment its reconnect grace counts from (`BrokerLink.grace_from`: not
        begun again by a flapping or contested session), else None."""
        connected_since = self.link.connected_since
        return (self.link.grace_from or connected_since) if connected_since is not None else None

    def note_stall(self, clock: float) -> None:
        """This loop back more than STALL_AFTER (a share of HEARTBEAT_TIMEOUT_S) after it last looked (at a turn's
        start and before its housekeeping) finds the bridge stalled: a SIGSTOP, a frozen VM, a long GC pause, a
        commit retried while the database was away. What the pumps sent meanwhile waits unread at the broker (or in
        the inbox): the link's thread stalled with this one and may not have read it yet, while `inbox.get` returns
        at once. So the checks that judge what was not heard wait the reconnect grace from now, as after a
        reconnection (review 28: a pump reporting every second was alarmed `communication_lost` on waking from a
        31 s stop), and the other bridges are not told this one applied what it has not read (`applied_until`).

        Lateness is the monotonic clock's, or the wall clock's when that says longer (a suspended machine's monotonic
        clock stands still while its wall clock is set forward on waking); the grace itself runs on the monotonic
        clock (`CheckSchedule.stall_over`), so a wall clock stepped ahead for a turn (a wrong NTP source, then put
        right) holds the checks for one grace, not for as long as it was wrong (review 29), and a step back holds
        nothing; a step back has housekeeping bring the moments stamped on the wrong clock back at its next tick
        (`Housekeeping.heard_ahead_pull_back`: to now, alarms' by the step measured here)."""
        now = timezone.now()
        last, self._turned_at = self._turned_at, (clock, now)
        if last is None:
            return
        late_s, wall_late_s = clock - last[0], (now - last[1]).total_seconds()
        if wall_late_s < late_s - AHEAD_TOLERANCE_S:  # the wall clock put back: what it stamped may lie ahead now
            self.housekeeping.clock_put_back(timedelta(seconds=late_s - wall_late_s))
        if max(late_s, wall_late_s) > settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] * STALL_AFTER:
            self.housekeeping.resumed_clock = clock
            logger.warning("the bridge was stalled %.1f s (its wall clock moved %.1f s): pumps are judged silent only "
                           "after the reconnect grace", late_s, wall_late_s)  # fmt: skip

    def _reconnected(self, away_s: float) -> None:
        """On the link's thread, before the new connection's first message: the backlog of `away_s` is no flood."""
        away = TimeAway.since(away_s, at=time.time())
        self.guard.away = self.budgets.away = times_away_open(self.budgets.away, away)  # one assignment: atomic
        if away.seconds >= 1:
            logger.info("broker regained after %.0f s away: its backlog is credited to each pump's budgets", away_s)

    def heartbeat_stats(self) -> dict:
        """What the heartbeat row shows about the bridge's work so far (takeovers of its session: the recent ones)."""
        clock = time.monotonic()
        return {
            **self.stats,
            "inbox": self.inbox.qsize() + len(self.waiting),
            "commandsInFlight": len(self.outbox.in_flight),
            "publisherWakes": self.waker.sent,
            "internalConnected": self.waker.connected,
            "budgetShed": self.budgets.shed_total,
            "protocol": "5" if self.link.protocol == 5 else "3.1.1",
            "sessionTakenOver": sum(clock - moment < CONTESTED_FOR_S for moment in self.link.takeovers),
            "sessionContested": self.link.session_contested,
            "metrics": metrics.registry_snapshot(),
            "countersSince": metrics.COUNTERS_SINCE.isoformat(),
            # several bridges sharing the pumps: one holding no slot (yet) holds no broker session by design
            "standby": getattr(self.link, "links", None) == {},
        }


def pump_budgets() -> PumpBudgets:
    """The per-pump budgets from the settings (ALARM_BUDGET_*, REPORT_BUDGET_*, REPORT_BYTES_*, ALARM_ACTIVE_MAX)."""
    limits = settings.PUMPSTREAM
    return PumpBudgets(
        alarm=Budget(limits["ALARM_BUDGET_PER_S"], limits["ALARM_BUDGET_BURST"]),
        report=Budget(limits["REPORT_BUDGET_PER_S"], limits["REPORT_BUDGET_BURST"]),
        max_active_alarms=limits["ALARM_ACTIVE_MAX"],
        report_bytes=Budget(limits["REPORT_BYTES_PER_S"], limits["REPORT_BYTES_BURST"]),
    )
