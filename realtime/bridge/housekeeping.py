"""Housekeeping the bridge runs between batches: silent pumps, unconfirmed starts, stale pumps, alarm reminders,
escalations and their webhooks, and the change log's old entries."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings

from devices.exceptions import PumpStreamError
from devices.housekeeping_selectors import (
    devices_silent_unalarmed,
    devices_stale_without_presence,
    sessions_unconfirmed_since,
)
from devices.services.alarm_rules import alarms_remind
from devices.services.changelog import change_log_prune
from devices.services.commands import commands_end_overdue
from devices.services.deliveries import escalation_deliveries_due, escalation_delivery_record
from devices.services.escalations import alarms_escalate
from devices.services.pumps import pump_mark_stale, pump_silence_check
from devices.services.requests import infusion_time_out
from realtime import metrics
from realtime.bridge.webhooks import WebhookSender

logger = logging.getLogger(__name__)
# Pumps each check handles per tick (every ~500 ms): a mass event (a ward's network down) is worked
# off over a few ticks while messages keep being committed between them, not in one long stall.
PER_TICK = 100
CHANGE_LOG_PRUNE_EVERY_S = 5.0


class Housekeeping:
    """Time-driven decisions; silence alarms wait a grace period after the bridge (re)gains the broker."""

    def __init__(self) -> None:
        self.stale_announced: set[str] | None = None
        self.webhooks = WebhookSender()
        self.pruned_at: datetime | None = None
        self.waiting_since: Callable[[str], datetime | None] = lambda device_id: None  # the worker's queue

    def tick(self, now: datetime, *, connected_since: datetime | None) -> None:
        """Run every check once."""
        self.confirmation_timeouts(now)
        self.overdue_commands(now)
        grace = timedelta(seconds=settings.PUMPSTREAM["RECONNECT_GRACE_S"])
        if connected_since is not None and now - connected_since >= grace:
            self.silent_sessions(now)
        self.stale_pumps(now)
        alarms_remind(now=now)
        self.escalations(now)
        self.change_log_prune(now)

    def escalations(self, now: datetime) -> None:
        """Escalate unacknowledged alarms due a tier; record webhook outcomes; hand due webhooks to the sender."""
        alarms_escalate(now=now)
        for delivery_id, delivered, error in self.webhooks.finished():
            escalation_delivery_record(delivery_id=delivery_id, delivered=delivered, error=error, now=now)
        for delivery_id, url, body in escalation_deliveries_due(now=now, exclude=self.webhooks.in_flight):
            self.webhooks.submit(delivery_id, url, body)

    def confirmation_timeouts(self, now: datetime) -> None:
        """Pending starts unconfirmed past CONFIRMATION_TIMEOUT_S become `timed_out` (and STOP is queued)."""
        cutoff = now - timedelta(seconds=settings.PUMPSTREAM["CONFIRMATION_TIMEOUT_S"])
        for infusion_id in sessions_unconfirmed_since(cutoff=cutoff, limit=PER_TICK):
            try:
                infusion_time_out(infusion_id=infusion_id)
            except PumpStreamError as exc:  # confirmed or cancelled meanwhile
                logger.info("time-out skipped: %s", exc.message, extra={"infusion_id": infusion_id})

    def overdue_commands(self, now: datetime) -> None:
        """Every command ends: those past their deadline become `expired` (never sent) or `failed` (not acted on)."""
        ended = commands_end_overdue(now=now, limit=PER_TICK)
        if ended:
            logger.info("commands ended at their deadline: %d", ended)

    def silent_sessions(self, now: datetime) -> None:
        """`communication_lost` for running sessions unheard (no progress or state change) past the heartbeat."""
        for device_id in devices_silent_unalarmed(now=now, limit=PER_TICK):
            as_of = self.silence_as_of(device_id, now)
            if as_of is not None and pump_silence_check(device_id=device_id, now=as_of):
                logger.warning("pump silent while infusing", extra={"device_id": device_id})

    def silence_as_of(self, device_id: str, now: datetime) -> datetime | None:
        """The moment as of which this pump's silence is judged, None for not now (`shared.SlotHousekeeping`):
        a pump whose messages wait in the bridge's own queue (a backlog after a reconnect, a flood's share) was
        heard; it is judged as of its oldest waiting message's arrival, never as silent for the bridge's delay."""
        waiting = self.waiting_since(device_id)
        return now if waiting is None else min(now, waiting)

    def stale_pumps(self, now: datetime) -> None:
        """Emit `device:status` once when a pump without presence turns stale (on start: only remember them)."""
        cutoff = now - timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])
        stale = devices_stale_without_presence(cutoff=cutoff)
        if self.stale_announced is None:
            self.stale_announced = stale
            return
        announced = sorted(stale - self.stale_announced)[:PER_TICK]
        for device_id in announced:
            pump_mark_stale(device_id=device_id, now=now)
        self.stale_announced = (self.stale_announced & stale) | set(announced)

    def change_log_prune(self, now: datetime) -> None:
        """Every few seconds, delete a chunk of change-log entries older than CHANGE_LOG_KEEP_S."""
        if self.pruned_at is not None and (now - self.pruned_at).total_seconds() < CHANGE_LOG_PRUNE_EVERY_S:
            return
        self.pruned_at = now
        deleted = change_log_prune(before=now - timedelta(seconds=settings.PUMPSTREAM["CHANGE_LOG_KEEP_S"]))
        if deleted:
            metrics.CHANGE_LOG_PRUNED.inc(deleted)
