"""The command outbox: publish queued commands at QoS 1, mark them sent on PUBACK, fail unacknowledged publishes.

A PAUSE, RESUME or STOP not acknowledged within COMMAND_ACK_TIMEOUT_S, or by its own deadline if that comes first,
fails (a person must act at the pump at once); withdrawing it from paho cannot take back a PUBLISH the broker already
holds, so it may still reach the pump, and one the pump then reports carrying out within its deadline ends `done`
after all (`devices/services/status.py`).
A START waits for its PUBACK until its own deadline: the broker may still deliver it (QoS 1), and its order, still
pending, is what ends it (done when the pump confirms, superseded when the order times out or is cancelled).
Commands past their deadline are ended by housekeeping (`commands_end_overdue`), after this outbox's tick of the
same moment, so a command still in flight at its deadline is the outbox's to end, withdrawn from paho first; one ended
by another road while in flight is withdrawn at the next tick (`_forget_ended`). Every move goes through the command
service, which also re-checks each command just before it is published (`command_publish_check`). Each command is
guarded on its own (`rows.py`): one that cannot be published, or whose PUBACK cannot be recorded (not the database's
fault), is logged once, counted and skipped a while, and holds back no other; one whose PUBACK could not be recorded
stays in flight until its deadline fails it.
Before paho has any command of a cycle, the cycle's commands are marked handed in one commit (`handed_at`,
`commands_handed_mark`, under their pumps' locks; taken back for those the link then refuses): a bridge that stalls
or dies after paho has one and before its record leaves a command no one may call "never sent" (issue 15).
The publication is recorded when the link takes the message (`command_published`: `published_at`, and a START's
deadline from it), before its PUBACK: the pump may act on it first. If that record fails after the publish, the
command is in flight all the same (never published twice), the failure is logged, and the record is tried again
with its PUBACK, before the command is marked `sent`; until then a START keeps its deadline from the order.
"""

import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.utils import timezone

from devices.models import Command
from devices.outbox_selectors import commands_no_longer_queued, commands_queued_any, commands_to_publish
from devices.services.commands import command_advance
from devices.services.deadlines_ahead import command_deadline_ahead
from devices.services.publication import (
    command_publish_check,
    command_published,
    commands_handed_mark,
    commands_handed_unmark,
)
from devices.states import CommandKind, CommandState
from protocol import topics
from protocol.commands import command_envelope_build
from realtime import metrics
from realtime.bridge.guard import INFRASTRUCTURE_ERRORS
from realtime.bridge.link import BrokerLink
from realtime.bridge.rows import RowGuard

logger = logging.getLogger(__name__)
PUBLISH_PER_TICK = 100
PUBACK_USUALLY = timedelta(seconds=1)  # a command in flight longer than this is checked against its row each tick
DISCONNECTED = -1
# A failed publish may still reach the pump: the broker can hold it already, and delivers it at QoS 1
NOT_ACKNOWLEDGED = "the broker did not acknowledge the command in time: the pump may still receive it"


@dataclass(frozen=True)
class InFlight:
    """A command handed to paho, waiting for the broker's PUBACK."""

    command_pk: int
    device_id: str
    deadline: datetime
    published_at: datetime | None = None
    unrecorded: Callable[[], None] | None = None  # its publication's record (`command_published`) while it failed


@dataclass(frozen=True)
class Outgoing:
    """A queued command re-checked and encoded, about to be handed to paho."""

    command: Command
    body: str
    expiry_s: int


class CommandOutbox:
    """Drains `queued` commands while the broker is connected; never hands paho one while disconnected."""

    def __init__(self, link: BrokerLink) -> None:
        self.link = link
        self.in_flight: dict[int, InFlight] = {}
        self.acked: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.rows = RowGuard()  # commands that failed for themselves: skipped a while (`rows.py`)
        self.unsettled: list[int] = []  # PUBACKs whose recording failed for itself: tried again until the deadline

    def tick(self, now: datetime) -> None:
        """Settle PUBACKs, fail overdue publishes, expire stale commands, publish the rest."""
        self.settle_acks(now)
        self._record_publications(now)
        self._fail_overdue(now)
        self._forget_ended(now)
        if not commands_queued_any():
            return  # the usual tick: one indexed look-up, no ORM query compiled ten times a second
        if self.link.connected.is_set():
            self._publish_queued(now)

    def settle_acks(self, now: datetime) -> None:
        """Record `sent` for every PUBACK received so far.

        The worker also calls this before each batch: paho reads the broker's PUBACK before the pump's
        reply on the same connection, so settling first lets the reply (a pump pausing at once) find its
        command `sent` and complete it, instead of the command turning `sent` after it was done.
        """
        unsettled, self.unsettled = self.unsettled, []
        while True:
            try:
                mid = unsettled.pop() if unsettled else self.acked.get_nowait()
            except queue.Empty:
                return
            flight = self.in_flight.get(mid)
            if flight is None:
                continue
            try:
                settled = self.rows.run("outbox_acks", flight.command_pk, partial(self._settle, mid, flight, now), now)
            except INFRASTRUCTURE_ERRORS:  # the database's: still in flight, settled on a later try
                self.unsettled += [*unsettled, mid]
                raise
            if not settled:  # its own fault (logged once) or skipped a while: in flight until its deadline fails it
                self.unsettled.append(mid)
                continue
            del self.in_flight[mid]
            metrics.COMMANDS_PUBLISHED.labels(outcome="sent").inc()

    def _settle(self, mid: int, flight: InFlight, now: datetime) -> int:
        """The PUBACK: the publication's record first if it failed at the publish, then `sent`."""
        self._record(mid, flight)
        self._move(flight.device_id, flight.command_pk, CommandState.SENT, now)
        return 1

    def _record_publications(self, now: datetime) -> None:
        """Each tick, the records of publications that failed (each guarded): before housekeeping ends a START at
        its order's deadline while the pump holds it with a later one."""
        for mid, flight in list(self.in_flight.items()):
            if flight.unrecorded is not None:
                self.rows.run("outbox_records", flight.command_pk, partial(self._record, mid, flight), now)

    def _record(self, mid: int, flight: InFlight) -> int:
        if flight.unrecorded is None:
            return 0
        flight.unrecorded()
        self.in_flight[mid] = replace(flight, unrecorded=None)
        logger.info("command publication recorded late", extra={"device_id": flight.device_id,
                                                                 "command_pk": flight.command_pk})  # fmt: skip
        return 1

    def _fail_overdue(self, now: datetime) -> None:
        """Fail each command unacknowledged at its flight's deadline (`COMMAND_ACK_TIMEOUT_S` after its publication,
        or its own deadline if that comes first; a START's own deadline), withdrawn from paho first. The outbox ticks
        before housekeeping at the same moment (`Bridge.maybe_tick`), so a command in flight is never ended at its
        deadline by housekeeping while paho still holds it: housekeeping left it with paho, which sent it after it
        was declared failed (after a reconnect, or once its in-flight window freed)."""
        for mid, flight in list(self.in_flight.items()):
            if now >= flight.deadline:
                self.link.forget(mid)
                del self.in_flight[mid]
                self.rows.forget("outbox_acks", flight.command_pk)
                self.rows.forget("outbox_records", flight.command_pk)
                fail = partial(self._move, flight.device_id, flight.command_pk, CommandState.FAILED, now,
                               error=NOT_ACKNOWLEDGED)  # fmt: skip
                if self.rows.run("outbox", flight.command_pk, _counted(fail), now):
                    metrics.COMMANDS_PUBLISHED.labels(outcome="failed").inc()

    def _forget_ended(self, now: datetime) -> None:
        """Withdraw a command still awaiting its PUBACK that ended by another road meanwhile, so paho never sends it
        after it was declared ended (after a reconnect, or once its in-flight window frees): a START whose order ended
        (cancelled, timed out: the START superseded; a cancelled start must not reach the pump), one a restart ended,
        or one another bridge's housekeeping ended at its deadline after the lead moved. One look-up, only while a
        command has waited longer than the PUBACK usually takes."""
        waiting = {flight.command_pk: mid for mid, flight in self.in_flight.items()
                   if now - flight.published_at > PUBACK_USUALLY}  # fmt: skip
        if not waiting:
            return
        for command_pk in commands_no_longer_queued(command_pks=list(waiting)):
            mid = waiting[command_pk]
            self.link.forget(mid)
            del self.in_flight[mid]
            metrics.COMMANDS_PUBLISHED.labels(outcome="withdrawn").inc()
            logger.info("command %s withdrawn before its PUBACK: it ended meanwhile, paho will not send it", command_pk)

    def _publish_queued(self, now: datetime) -> None:
        """Publish the queued commands: each checked and encoded, then all marked handed in one commit
        (`commands_handed_mark`) before paho has any, then handed over one by one."""
        in_flight = [flight.command_pk for flight in self.in_flight.values()]
        skipped = self.rows.skipped("outbox", now)
        waiting = commands_to_publish(now=now, in_flight=[*in_flight, *skipped], limit=PUBLISH_PER_TICK)
        outgoing: list[Outgoing] = []
        for command in waiting:
            self.rows.run("outbox", command.pk, partial(self._prepare, command, now, outgoing), now)
        if not outgoing:
            return
        handing = commands_handed_mark(commands=[item.command for item in outgoing], now=now)
        outgoing = [item for item in outgoing if item.command.pk in handing]
        for position, item in enumerate(outgoing):
            if self.rows.run("outbox", item.command.pk, partial(self._publish, item, now), now) == DISCONNECTED:
                # disconnected meanwhile: these stay queued, visibly, and never handed over, unmarked
                commands_handed_unmark(command_pks=[left.command.pk for left in outgoing[position:]], now=now)
                return

    @staticmethod
    def _prepare(command: Command, now: datetime, outgoing: list[Outgoing]) -> int:
        """Re-check one queued command with the service and encode it: added to `outgoing` unless withdrawn."""
        if not command_publish_check(command=command, now=now):
            return 0  # the service withdrew it (the server's own STOP to a pump now running that order)
        if command_deadline_ahead(command, now=now):
            return 0  # stamped on a clock that ran ahead: held, queued, until housekeeping brings its deadline back
        envelope = command_envelope_build(kind=command.kind, payload=command.payload,
                                          command_id=str(command.command_id), expires_at=command.expires_at,
                                          now=timezone.now())  # fmt: skip
        expiry_s = int((command.expires_at - now).total_seconds())
        outgoing.append(Outgoing(command, envelope.encoded(), expiry_s))
        return 1

    def _publish(self, item: Outgoing, now: datetime) -> int:
        """Hand one command, marked handed, to the link and record it; DISCONNECTED if the link went away."""
        command = item.command
        ack_timeout = timedelta(seconds=settings.PUMPSTREAM["COMMAND_ACK_TIMEOUT_S"])
        mid = self.link.publish(topics.commands_topic(command.device.device_id), item.body, expiry_s=item.expiry_s)
        if mid is None:
            return DISCONNECTED
        deadline = command.expires_at
        if command.kind != CommandKind.START_INFUSION:  # never past its own deadline: see `_fail_overdue`
            deadline = min(now + ack_timeout, command.expires_at)
        record = partial(command_published, command=command, now=now)  # stored once it went (idempotent)
        self.in_flight[mid] = InFlight(command.pk, command.device.device_id, deadline, published_at=now,
                                       unrecorded=record)  # fmt: skip
        record()  # if this raises, the command stays in flight and the record is tried again with its PUBACK
        self.in_flight[mid] = replace(self.in_flight[mid], unrecorded=None)
        logger.info("command published", extra={"device_id": command.device.device_id,
                                                "command_id": str(command.command_id)})  # fmt: skip
        return 1

    @staticmethod
    def _move(device_id: str, command_pk: int, to: CommandState, now: datetime, error: str = "") -> None:
        """Through the command service (its lock and legality check): a command that moved on meanwhile stays."""
        command_advance(device_id=device_id, command_pk=command_pk, to=to, now=now, error=error)


def _counted(move: Callable[[], None]) -> Callable[[], int]:
    """A move as a guarded row's handling: 1 once done."""

    def handled() -> int:
        move()
        return 1

    return handled
