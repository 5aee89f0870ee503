"""Housekeeping the bridge runs between batches: silent pumps, unconfirmed starts, stale pumps, pumps online by a
presence no broker vouches for since it restarted, alarm reminders, escalations and their webhooks, flood alarms'
waiting news and counts, and the change log's old entries.

Each check handles PER_TICK rows a tick; when each runs (every round after a commit, a part of the checks a tick, else
asleep until its next deadline can come) is `check_schedule.py`'s.
"""

import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings

from devices.exceptions import PumpStreamError
from devices.housekeeping_selectors import (
    ESCALATION_DELAY_SETTINGS,
    REMINDED_PRIORITIES,
    commands_due_by,
    devices_presence_unvouched,
    devices_silent_unalarmed,
    devices_stale_by_silence,
    escalation_delays,
    escalations_due_by,
    flood_counts_due_by,
    flood_news_due_by,
    reminders_due_by,
    sessions_unconfirmed_since,
    sessions_unverified_since,
)
from devices.services.alarm_rules import alarms_remind
from devices.services.changelog import change_log_prune
from devices.services.command_deadlines import commands_end_overdue
from devices.services.deadlines_ahead import deadlines_pull_back, moments_ahead
from devices.services.deliveries import escalation_deliveries_due
from devices.services.escalations import alarms_escalate
from devices.services.heard import heard_moments_pull_back
from devices.services.protection import alarm_floods_counts_send, alarm_floods_news_signal
from devices.services.pumps import pump_mark_stale, pump_presence_unvouched, pump_silence_check
from devices.services.requests import infusion_time_out, infusion_unverified_raise
from realtime import metrics
from realtime.bridge.check_schedule import CheckSchedule, round_begins, timeouts
from realtime.bridge.outcomes import Unrecorded, outcome_record
from realtime.bridge.rows import RowGuard
from realtime.bridge.webhooks import WebhookSender

logger = logging.getLogger(__name__)
# Rows each check handles per tick: a mass event (a ward's switch down) in short pages, messages committed between
# them. 1,000 communication_lost in one tick held the worker 4.0 s on SQLite, 100 a tick 0.4-0.5 s, 20 ~0.1 s
# (bench/silence_storm.py). While a page was full (`behind`) the worker runs the next at its next turn.
PER_TICK = 20
CHANGE_LOG_PRUNE_EVERY_S = 5.0
# How often (monotonic clock) moments of hearing still to come are looked for, besides the first tick and a tick after
# the worker saw the wall clock put back (`heard_ahead_due`): another bridge's clock, put back, is seen so.
HEARD_AHEAD_EVERY_S = 5.0


def escalation_timeouts() -> list[float]:
    """Every tier's delay of every priority."""
    return [delay for priority in ESCALATION_DELAY_SETTINGS for delay in escalation_delays(priority)]


class Housekeeping(CheckSchedule):
    """Time-driven decisions; silence alarms and start time-outs wait a grace period after the broker link returns."""

    def __init__(self) -> None:
        super().__init__()
        self.stale_announced: set[str] | None = None
        self.webhooks = WebhookSender()
        self.rows = RowGuard()  # each check's rows, guarded one by one (`rows.py`)
        self.silence_offset = 0  # silent pumps the next tick's page skips (left unalarmed by the last pages)
        self.starts_after: tuple[datetime, int] | None = None  # where the next tick's page of overdue starts begins
        self.unverified_after: tuple[datetime, int] | None = None  # the same, of orders unverified past their grace
        self.unrecorded: dict[int, Unrecorded] = {}  # webhook outcomes whose recording failed: tried next tick
        self.pruned_at: datetime | None = None
        self.waiting_since: Callable[[str], datetime | None] = lambda device_id: None  # the worker's queue
        self.broker_started: Callable[[], datetime | None] = lambda: None  # the link's reading (`broker_start.py`)
        self.heard_ahead_clock: float | None = None  # when moments still to come were last looked for (monotonic)
        self.heard_ahead_due = False  # the wall clock was put back (the worker says so): look at the next tick
        self.stepped_back: timedelta | None = None  # by how much at most, until the next pull-back (`clock_put_back`)
        # Per check: what it does, whether anything of its kind falls due by a moment, and its timeouts (seconds).
        heartbeat, command = timeouts("HEARTBEAT_TIMEOUT_S"), timeouts("COMMAND_EXPIRY_S", "CONFIRMATION_TIMEOUT_S")
        self.checks = {
            "starts": (self.confirmation_timeouts, self.starts_due_by, timeouts("CONFIRMATION_TIMEOUT_S")),
            "unverified": (self.unverified_starts, self.unverified_due_by, timeouts("EVIDENCE_CONFIRMATION_GRACE_S")),
            "commands": (self.overdue_commands, commands_due_by, command),
            "silence": (self.silent_sessions, self.silence_due_by, heartbeat),
            "stale": (self.stale_pumps, self.stale_due_by, heartbeat),
            "presence": (self.presence_unvouched, self.presence_due_by, timeouts("RECONNECT_GRACE_S")),
            "reminders": (self.reminders, reminders_due_by, timeouts(*REMINDED_PRIORITIES.values())),
            "escalations": (self.escalations, self.escalations_due_by, escalation_timeouts),
            "flood_news": (self.flood_news, flood_news_due_by, timeouts("ALARM_FLOOD_NEWS_INTERVAL_S")),
            "flood_counts": (self.flood_counts, flood_counts_due_by, lambda: []),  # held by a commit: it wakes
        }  # fmt: skip

    def tick(
        self,
        now: datetime,
        *,
        connected_since: datetime | None,
        clock: float | None = None,
        parts: Collection[int] | None = None,
    ) -> None:
        """Moments of hearing still to come brought back first (at the first round, every HEARD_AHEAD_EVERY_S, and
        at the next tick after the wall clock was put back), then every awake check once (of the parts `parts` alone:
        `CheckSchedule`)."""
        clock = time.monotonic() if clock is None else clock
        last = self.heard_ahead_clock
        if self.heard_ahead_due or (round_begins(parts) and (last is None or clock - last >= HEARD_AHEAD_EVERY_S)):
            self.heard_ahead_clock, self.heard_ahead_due = clock, False
            self.check_run("heard_ahead", self.heard_ahead_pull_back, now)
        super().tick(now, connected_since=connected_since, clock=clock, parts=parts)

    def clock_put_back(self, step: timedelta) -> None:
        """The worker saw the wall clock go back by `step` (the monotonic clock went on): look at the next tick, and
        bring alarms' moments back by the largest step seen since the last look. Not their sum: a clock flapping
        ahead and back twice (a step forward cannot be told from a suspend) held moments an hour ahead, not two
        (review 50: summed, an occlusion raised 2 s before read "for 60 min"). A moment further ahead than the largest
        step (the clock went further ahead, then back in steps) still goes back no later than now.
        Every check asks again at the next tick: one put to sleep on the clock ahead would sleep until that clock's
        moment (an hour after it was put right, on an idle bridge that commits nothing to wake it; review 51)."""
        self.asleep_until.clear()
        self.heard_ahead_due = True
        self.stepped_back = max(step, self.stepped_back or timedelta(0))

    def heard_ahead_pull_back(self, now: datetime) -> bool:
        """Moments still to come on this clock (written while it ran ahead) brought back, after one read that finds
        none on a clock never ahead (`deadlines_ahead.moments_ahead`). Pumps' moments of hearing to `now`
        (`heard.heard_moments_pull_back`): a pump silent since the clock was put right is judged silent a heartbeat
        after the correction at the latest, not when the wrong clock's moment comes. Deadlines' moments so that each
        deadline lies at most its own length ahead (`deadlines_ahead.deadlines_pull_back`: escalations, reminders,
        commands' ends, ward silences). Logged and counted: the rows moved say a clock ran ahead."""
        step = self.stepped_back  # kept until a look succeeds: a tick failing on the database loses no step
        if not moments_ahead(now=now):
            self.stepped_back = None
            return False
        heard, deadlines = heard_moments_pull_back(now=now), deadlines_pull_back(now=now, step=step)
        self.stepped_back = None
        if heard:
            metrics.HEARD_AHEAD_PULLED_BACK.inc(heard)
            logger.warning("moments of hearing still to come (a clock ran ahead) brought back to now: %d rows", heard)
        if deadlines:
            metrics.DEADLINES_AHEAD_PULLED_BACK.inc(deadlines)
            logger.warning("deadlines timed from moments still to come (a clock ran ahead) brought back: %d rows",
                           deadlines)  # fmt: skip
        if heard or deadlines:
            self.committed = True  # the moments the checks sleep on moved: every check wakes
        return False

    def reminders(self, now: datetime) -> bool:
        """Re-alert acknowledged alarms still active past their priority's reminder interval (PER_TICK a tick)."""
        skipped, run = self.rows.skipped("reminders", now), self.rows.runner(now)
        return alarms_remind(now=now, limit=PER_TICK, exclude=skipped, run=run) >= PER_TICK

    def flood_news(self, now: datetime) -> bool:
        """Signal flood alarms' news beyond the types they remember once its interval ended (PER_TICK a tick)."""
        skipped, run = self.rows.skipped("flood_news", now), self.rows.runner(now)
        return alarm_floods_news_signal(now=now, limit=PER_TICK, exclude=skipped, run=run) >= PER_TICK

    def flood_counts(self, now: datetime) -> bool:
        """Send flood alarms' counts held unsent once their interval passed (PER_TICK a tick): a pump that stopped
        flooding has its last counts shown within about a second."""
        skipped, run = self.rows.skipped("flood_counts", now), self.rows.runner(now)
        return alarm_floods_counts_send(now=now, limit=PER_TICK, exclude=skipped, run=run) >= PER_TICK

    def starts_due_by(self, moment: datetime) -> bool:
        cutoff = moment - timedelta(seconds=settings.PUMPSTREAM["CONFIRMATION_TIMEOUT_S"])
        return bool(sessions_unconfirmed_since(cutoff=cutoff, limit=1))

    def silence_due_by(self, moment: datetime) -> bool:
        return bool(devices_silent_unalarmed(now=moment, limit=1))

    def stale_due_by(self, moment: datetime) -> bool:
        if self.stale_announced is None:
            return True
        cutoff = moment - timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])
        return bool(devices_stale_by_silence(cutoff=cutoff) - self.stale_announced)

    def escalations_due_by(self, moment: datetime) -> bool:
        """An alarm due a tier, a webhook due a try, or one under way or unrecorded (this check records it)."""
        return bool(self.webhooks.in_flight or self.unrecorded) or escalations_due_by(moment)

    def escalations(self, now: datetime) -> bool:
        """Escalate unacknowledged alarms due a tier; record webhook outcomes; hand due webhooks to the sender.

        Each outcome is recorded on its own: one that cannot be recorded now (the database locked) is kept and
        tried again next tick, never lost with the others, and its delivery is not posted again meanwhile (a page
        sent twice); the outcome of a delivery whose pump was deleted meanwhile has nothing left to record.
        """
        skipped, run = self.rows.skipped("escalations", now), self.rows.runner(now)
        escalated = alarms_escalate(now=now, limit=PER_TICK, exclude=skipped, run=run)
        kept, self.unrecorded = self.unrecorded, {}
        for unrecorded in [*kept.values(), *map(Unrecorded, self.webhooks.finished())]:
            if not outcome_record(unrecorded, now, self.rows):  # kept: tried again next tick (`outcomes.py`)
                self.unrecorded[unrecorded.outcome[0]] = unrecorded
        exclude = self.webhooks.in_flight | set(self.unrecorded)
        due = escalation_deliveries_due(now=now, exclude=exclude, limit=PER_TICK)
        for delivery_id, url, body in due:
            self.webhooks.submit(delivery_id, url, body)
        return escalated >= PER_TICK or len(due) >= PER_TICK

    def confirmation_timeouts(self, now: datetime) -> bool:
        """Pending starts unconfirmed CONFIRMATION_TIMEOUT_S after their START was published (or, never published,
        after the order) become `timed_out` (and STOP is queued).

        Held, like silence, while the bridge has no broker link and for the reconnect grace after (`tick`), and
        judged as of `silence_as_of`: a pump whose messages wait unapplied in the bridge (its confirmation may be
        among them), or whose slot is not settled, is not timed out for the bridge's own delay. The overdue starts
        are read PER_TICK at a time from where the last tick stopped (`starts_after`), so a start is reached
        however many before it are held.
        """
        timeout = timedelta(seconds=settings.PUMPSTREAM["CONFIRMATION_TIMEOUT_S"])
        overdue = sessions_unconfirmed_since(cutoff=now - timeout, limit=PER_TICK, after=self.starts_after)
        self.starts_after = (overdue[-1][2], overdue[-1][3]) if len(overdue) == PER_TICK else None
        judged = 0
        for infusion_id, device_id, waiting_from, _ in overdue:
            as_of = self.silence_as_of(device_id, now)
            if as_of is None or as_of - waiting_from <= timeout:
                continue
            judged += 1
            self.rows.run("starts", infusion_id, partial(_time_out, infusion_id), now)
        return self.starts_after is not None and judged > 0  # a page all held is no reason to hurry

    def unverified_due_by(self, moment: datetime) -> bool:
        cutoff = moment - timedelta(seconds=settings.PUMPSTREAM["EVIDENCE_CONFIRMATION_GRACE_S"])
        return bool(sessions_unverified_since(cutoff=cutoff, limit=1))

    def unverified_starts(self, now: datetime) -> bool:
        """Orders under way on a pump's evidence whose confirmation did not follow within
        EVIDENCE_CONFIRMATION_GRACE_S get `parameters_unverified` (PER_TICK a tick). Held, like the start time-outs,
        while the broker link is down and for the reconnect grace, and judged as of `silence_as_of`: a confirmation
        waiting unapplied in the bridge is not taken for none."""
        grace = timedelta(seconds=settings.PUMPSTREAM["EVIDENCE_CONFIRMATION_GRACE_S"])
        due = sessions_unverified_since(cutoff=now - grace, limit=PER_TICK, after=self.unverified_after)
        self.unverified_after = (due[-1][2], due[-1][0]) if len(due) == PER_TICK else None  # the next page's start
        judged = 0
        for session_pk, device_id, since in due:
            as_of = self.silence_as_of(device_id, now)
            if as_of is None or as_of - since <= grace:
                continue
            judged += 1
            self.rows.run("unverified", session_pk, partial(_unverified, session_pk, now), now)
        return self.unverified_after is not None and judged > 0  # a page all held is no reason to hurry

    def overdue_commands(self, now: datetime) -> bool:
        """Every command ends: those past their deadline become `expired` (never sent) or `failed` (not acted on)."""
        skipped, run = self.rows.skipped("commands", now), self.rows.runner(now)
        ended = commands_end_overdue(now=now, limit=PER_TICK, exclude=skipped, run=run)
        if ended:
            logger.info("commands ended at their deadline: %d", ended)
        return ended >= PER_TICK

    def silent_sessions(self, now: datetime) -> bool:
        """`communication_lost` for running sessions unheard (no progress or state change) past the heartbeat.

        Read PER_TICK at a time, the next page skipping those this one left (held, or not silent as of their
        moment: `silence_as_of`), wrapping round after the last: a pump is reached however many are held.
        """
        found = devices_silent_unalarmed(now=now, limit=PER_TICK, offset=self.silence_offset)
        left = 0
        for device_id in found:
            as_of = self.silence_as_of(device_id, now)
            silenced = partial(pump_silence_check, device_id=device_id, now=as_of)
            if as_of is not None and self.rows.run("silence", device_id, silenced, now):
                logger.warning("pump silent while infusing", extra={"device_id": device_id})
            else:
                left += 1
        self.silence_offset = self.silence_offset + left if len(found) == PER_TICK else 0
        return len(found) == PER_TICK and left < PER_TICK  # a page all held (a flood's pumps) is no reason to hurry

    def silence_as_of(self, device_id: str, now: datetime) -> datetime | None:
        """The moment as of which this pump's silence is judged, None for not now (`shared.SlotHousekeeping`):
        a pump whose messages wait in the bridge's own queue (a backlog after a reconnect, a flood's share) was
        heard; it is judged as of its oldest waiting message's arrival, never as silent for the bridge's delay."""
        waiting = self.waiting_since(device_id)
        return now if waiting is None else min(now, waiting)

    def stale_pumps(self, now: datetime) -> bool:
        """Emit `device:status` once when a pump judged by its silence turns stale (on start: only remember them):
        one without presence, or one whose presence is not vouched for (the broker restarted, its presence ticked in
        the admin since it said `online`: review 46, M2): its screens take the server's word for a pump with
        presence, and would read "Online" until told."""
        cutoff = now - timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])
        stale = devices_stale_by_silence(cutoff=cutoff)
        if self.stale_announced is None:
            self.stale_announced = stale
            return False
        unannounced = sorted(stale - self.stale_announced - self.rows.skipped("stale", now))
        page = [(device_id, partial(_mark_stale, device_id, now)) for device_id in unannounced[:PER_TICK]]
        announced = {device_id for device_id, mark in page if self.rows.run("stale", device_id, mark, now)}
        self.stale_announced = (self.stale_announced & stale) | announced
        return len(unannounced) > PER_TICK

    def presence_due_by(self, moment: datetime) -> bool:
        started = self.presence_vouched_since(moment)
        return started is not None and bool(devices_presence_unvouched(started_at=started, limit=1))

    def presence_vouched_since(self, now: datetime) -> datetime | None:
        """When the broker now running started, once the reconnect grace after it has passed (the pumps alive
        have reconnected and said `online` again); None before, or when the broker tells no uptime."""
        started = self.broker_started()
        if started is None or (now - started).total_seconds() < settings.PUMPSTREAM["RECONNECT_GRACE_S"]:
            return None
        return started

    def presence_unvouched(self, now: datetime) -> bool:
        """Pumps online by their presence but last heard before the broker now running started, and not since its
        reconnect grace: no broker holds their Last Will, so none would ever say they went (the broker crashed while
        they were switched off; `broker_start.py`). Their presence goes back to unknown: stale by their age, as a pump
        without presence (PER_TICK a tick; a pump whose messages wait unapplied in the bridge is left for now)."""
        started = self.presence_vouched_since(now)
        if started is None:
            return False
        due = devices_presence_unvouched(started_at=started, limit=PER_TICK, exclude=self.rows.skipped("presence", now))
        for device_id in due:
            if self.waiting_since(device_id) is None:
                self.rows.run("presence", device_id, partial(_presence_unvouched, device_id, started, now), now)
        return len(due) >= PER_TICK

    def change_log_prune(self, now: datetime) -> None:
        """Every few seconds, delete a chunk of change-log entries older than CHANGE_LOG_KEEP_S."""
        if self.pruned_at is not None and (now - self.pruned_at).total_seconds() < CHANGE_LOG_PRUNE_EVERY_S:
            return
        self.pruned_at = now
        deleted = change_log_prune(before=now - timedelta(seconds=settings.PUMPSTREAM["CHANGE_LOG_KEEP_S"]))
        if deleted:
            metrics.CHANGE_LOG_PRUNED.inc(deleted)


def _unverified(session_pk: int, now: datetime) -> int:
    return int(infusion_unverified_raise(session_pk=session_pk, now=now))


def _time_out(infusion_id: str) -> int:
    """Time out one overdue start; 0 if it was confirmed or cancelled meanwhile."""
    try:
        infusion_time_out(infusion_id=infusion_id)
    except PumpStreamError as exc:
        logger.info("time-out skipped: %s", exc.message, extra={"infusion_id": infusion_id})
        return 0
    return 1


def _presence_unvouched(device_id: str, broker_started_at: datetime, now: datetime) -> int:
    if not pump_presence_unvouched(device_id=device_id, broker_started_at=broker_started_at, now=now):
        return 0
    metrics.PRESENCE_UNVOUCHED.inc()
    logger.warning("pump online by a presence no broker vouches for (last heard before the broker started %s): "
                   "shown stale until it is heard", broker_started_at.isoformat(timespec="seconds"),
                   extra={"device_id": device_id})  # fmt: skip
    return 1


def _mark_stale(device_id: str, now: datetime) -> int:
    pump_mark_stale(device_id=device_id, now=now)
    return 1
