"""The moment of publication: what the outbox asks the command service just before and as it publishes a command.

A STOP clearing a confirm screen (a cancel's, a time-out's) is re-checked and withdrawn if it would stop a pump
reporting infusing (`clearing_stops.py`); a START's deadline moves to run from its publication; the commands about
to be handed to the broker are marked so (`handed_at`), once per outbox cycle, before paho has them; the publication
(`published_at`) is recorded and told.
"""

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction

from devices import payloads
from devices.housekeeping_selectors import start_lifetime
from devices.models import Command, Device, InfusionSession
from devices.services.changelog import change_log_append
from devices.services.changes import change_record, device_lock
from devices.services.clearing_stops import clearing_stop_withheld_why, clearing_stops_withdraw
from devices.services.commands import command_withdraw
from devices.services.sql import rows_update
from devices.states import SESSION_ON_PUMP_STATUSES, CommandKind, CommandState
from protocol import events


def command_publish_check(*, command: Command, now: datetime) -> bool:
    """Whether the outbox may still publish this queued command (its re-check, just before it goes out).

    A Stop, Pause or Resume of the pump's own infusion (no order) is withdrawn once an order runs on the pump
    (`_own_infusion_command_check`). Of the rest, only a STOP clearing a confirm screen (`clears_screen`: a person's
    cancel, the server's time-out) is looked at again (one lock, rarely): if its order runs on the pump meanwhile, or
    the pump reports infusing (the rule `_end_pending` queues it by, `clearing_stop_withheld_why`), it is withdrawn
    (`clearing_stops_withdraw`) and not published. A STOP a person asked for with Stop, and anything else, goes; a
    START's deadline (`expiresAt`) moves to run from now, its publication (`_start_deadline_from`,
    `command_published`).
    """
    if command.kind == CommandKind.START_INFUSION:
        return _start_deadline_from(command, now)
    if command.session_id is None:
        return _own_infusion_command_check(command, now)
    if not command.clears_screen:
        return True
    with transaction.atomic():
        device = device_lock(device_id=command.device.device_id)
        session = InfusionSession.objects.filter(pk=command.session_id).first()
        if not Command.objects.filter(pk=command.pk, state=CommandState.QUEUED).exists():
            return False  # moved on meanwhile (withdrawn, expired)
        if session is None:
            return True
        why = clearing_stop_withheld_why(device=device, session=session)
        if not why:
            return True
        clearing_stops_withdraw(device=device, session=session, why=why, now=now)
        return False


def _own_infusion_command_check(command: Command, now: datetime) -> bool:
    """A Stop, Pause or Resume of the pump's own infusion (asked with `infusionId` null) goes only while no order runs
    on the pump. Once one does (an order that waited was confirmed meanwhile), the infusion it was for has ended, and
    the pump (the original firmware knows no infusion ids) would apply it to that order, which nobody asked to stop or
    pause: it is withdrawn (`superseded`, audited `server.command_withdrawn`). Also one a restarted bridge would
    publish again (`published_at`, no PUBACK recorded): if its first copy reached the pump, it acted on the infusion
    it was for then, and the pump ignores a copy (same `commandId`); if not, the copy would reach the order."""
    with transaction.atomic():
        device = device_lock(device_id=command.device.device_id)
        order = InfusionSession.objects.filter(device=device, status__in=SESSION_ON_PUMP_STATUSES).first()
        if order is None:
            return True
        if not Command.objects.filter(pk=command.pk, state=CommandState.QUEUED).exists():
            return False  # moved on meanwhile (withdrawn, expired)
        why = f"the pump now runs the order {order.infusion_id}; it was for the pump's own infusion, which has ended"
        withdrawn = "not sent again" if command.published_at or command.handed_at else "withdrawn unsent"
        command_withdraw(
            device=device, command=command, session=order, now=now, error=f"{withdrawn}: {why}",
            audit="server.command_withdrawn", details={"command": command.kind, "reason": why},
        )  # fmt: skip
        return False


def _start_deadline_from(command: Command, now: datetime) -> bool:
    """A START's deadline runs from its publication (`now`, or its first one: `published_at`): the pump is told, and
    given, the whole confirmation time however long the START waited queued (a broker outage); never shortened. A
    START published again (a bridge restarted before its PUBACK) keeps the deadline of its first publication, which
    the pump (de-duplicating by `commandId`) and the order's time-out (`start_waiting_from`) both go by. Set on
    `command` only, stored by `command_published` once the link took it, never for a publish that did not happen.
    False if it moved on meanwhile or its deadline from the order has passed (never published after it, whatever an
    earlier try stored)."""
    if now >= command.created_at + start_lifetime():
        return False
    if not Command.objects.filter(pk=command.pk, state=CommandState.QUEUED).exists():
        return False
    command.expires_at = max(command.expires_at, (command.published_at or now) + start_lifetime())
    return True


def command_published(*, command: Command, now: datetime) -> None:
    """The broker link took the command (any kind): its publication is stored (`published_at`: handed to the
    broker, `queued` until its PUBACK is recorded, yet the pump may act on it), with a START's deadline moved to run
    from it, and told (`device:command` with `publishedAt`: the page says "sent", no longer "waiting to be sent"),
    unless the command moved on meanwhile. Idempotent: the outbox calls it again with the PUBACK when it failed here,
    and a command published again after a bridge restart keeps its first publication (nothing new is told)."""
    with transaction.atomic():
        device = device_lock(device_id=command.device.device_id)
        queued = Command.objects.filter(pk=command.pk, state=CommandState.QUEUED)
        first = queued.filter(published_at__isnull=True).update(published_at=now)
        later_deadline = command.kind == CommandKind.START_INFUSION and queued.filter(
            expires_at__lt=command.expires_at
        ).update(expires_at=command.expires_at)
        if first or later_deadline:
            stored = Command.objects.select_related("session", "created_by").get(pk=command.pk)
            change_record(device=device, event=events.DEVICE_COMMAND, body=payloads.command_body(stored))


def commands_handed_mark(*, commands: Sequence[Command], now: datetime) -> set[int]:
    """The outbox is about to hand these commands to the broker link: each still `queued` is marked handed
    (`handed_at`, its first mark kept), committed before paho has any; returns their pks, the only ones it may hand.

    One transaction per outbox cycle, however many commands. From the mark on, a command may reach the pump even if
    the bridge stalls or dies before recording its publication, so no one ends it "expired, never sent" (Daphne's
    keeper ends it `failed`, its outcome unknown: `command_deadlines.commands_end_unpublished`). Their pumps are
    locked first (in a fixed order), as every command's end is decided under its pump's lock: one Daphne ended
    meanwhile is neither marked nor handed (it would reach the pump though it reads "never sent"), and Daphne,
    deciding after this, sees the mark. Each first mark is told in the same commit (`device:command` with
    `handedAt`, `_handed_told`): while the bridge stalls before its record, the screens say "handed to the broker,
    outcome not yet known", never "waiting to be sent" nor, past the deadline, "NOT SENT" (review 26, finding 4)."""
    with transaction.atomic():
        devices = _devices_lock({command.device_id for command in commands})
        queued = Command.objects.filter(pk__in=[command.pk for command in commands], state=CommandState.QUEUED)
        handing = set(queued.values_list("pk", flat=True))
        marking = list(_told_rows(Command.objects.filter(pk__in=handing, handed_at__isnull=True)))
        Command.objects.filter(pk__in=[command.pk for command in marking]).update(handed_at=now)
        for command in marking:
            command.handed_at = now
        _handed_told(devices, marking)
    return handing


def commands_handed_unmark(*, command_pks: list[int], now: datetime) -> None:
    """The broker link refused these commands after they were marked at `now` (it went away): never handed over, their
    mark is taken back, so each can still end `expired`, and told (`handedAt` null again), under their pumps' locks
    as the mark was. A mark of an earlier handover (a restarted bridge publishing again) stays: that copy may be in
    the broker's hands."""
    unmarking = Command.objects.filter(pk__in=command_pks, handed_at=now, published_at__isnull=True)
    with transaction.atomic():
        devices = _devices_lock(set(unmarking.values_list("device_id", flat=True)))
        taken_back = list(_told_rows(unmarking))
        unmarking.update(handed_at=None)
        for command in taken_back:
            command.handed_at = None
        _handed_told(devices, taken_back)


def _devices_lock(device_pks: set[int]) -> dict[int, Device]:
    """Lock these pumps (in `Device`'s lock order, pk), as every command's end is decided under its pump's lock."""
    locked = Device.objects.select_for_update(of=("self",)).select_related("ward").filter(pk__in=device_pks)
    return {device.pk: device for device in locked.order_by("pk")}


def _told_rows(commands):
    """The commands with what their `device:command` body reads (`command_body`), in a fixed order."""
    return commands.select_related("session", "created_by").order_by("pk")


def _handed_told(devices: dict[int, Device], commands: list[Command]) -> None:
    """One `device:command` change per command whose mark moved, in the caller's transaction under the pumps' locks:
    the changes appended in one prepared statement and the pumps' `seq` stored in another (`bulk_update` took 2/3 of
    the mark's time for 100 commands; the snapshot reads the same body from
    the row: `command_body`)."""
    if not commands:
        return
    entries = [(command.device_id, change_record(device=devices[command.device_id], event=events.DEVICE_COMMAND,
                                                 body=payloads.command_body(command), store_seq=False))
               for command in commands]  # fmt: skip
    touched = [devices[device_pk] for device_pk in sorted({command.device_id for command in commands})]
    rows_update(touched, ("event_seq",), {})
    change_log_append(entries=entries)
