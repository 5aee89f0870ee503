"""The moment of publication: what the outbox asks the command service just before and as it publishes a command.

The server's own screen-clearing STOP (a time-out's) is re-checked and withdrawn if it would stop a pump reporting
infusing; a START's deadline moves to run from its publication; the publication (`published_at`) is recorded.
"""

from datetime import datetime

from django.db import transaction

from devices import payloads
from devices.housekeeping_selectors import start_lifetime
from devices.models import Command, Device, InfusionSession
from devices.selectors import pump_state_reported_after
from devices.services.changes import change_record, device_lock, event_record
from devices.services.commands import command_transition
from devices.states import SESSION_ON_PUMP_STATUSES, CommandKind, CommandState, PumpState
from protocol import events

TIME_OUT_STOP_REASON = "no confirmation from the pump in time"  # the server's own STOP after a start timed out


def is_time_out_stop(command: Command) -> bool:
    """The STOP the server queued on its own after a start timed out (`infusion_time_out`): no person asked for it."""
    return (
        command.kind == CommandKind.STOP_INFUSION
        and command.created_by_id is None
        and command.session_id is not None
        and (command.payload or {}).get("reason") == TIME_OUT_STOP_REASON
    )


def pump_reports_infusing_since(*, device: Device, since: datetime) -> bool:
    """Whether the pump said it was running after `since` (progress, or a running pump state).

    The server's own STOP (a time-out's) is never queued (`_end_pending`) nor published (`command_publish_check`)
    to such a pump.
    """
    if device.pump_state == PumpState.RUNNING:
        return True
    heard_progress = device.latest_progress_at is not None and device.latest_progress_at > since
    if not heard_progress or (device.latest_progress or {}).get("status") not in (None, "running"):
        return False
    # the running progress stands, unless the pump reported itself idle since it (stopped remotely or at the pump)
    return device.pump_state != PumpState.IDLE or not pump_state_reported_after(
        device=device, at=device.latest_progress_at
    )


def time_out_stops_withdraw(*, device: Device, session: InfusionSession, why: str, now: datetime) -> list[Command]:
    """The pump runs `session` after all (or reports infusing): the server's own time-out STOP, queued, is withdrawn.

    The server never stops on its own a pump whose reports show it infusing an order (the time-out's STOP meets
    the pump's late confirmation), nor one reporting infusing since the order was placed (`command_publish_check`).
    A STOP a person asked for (a cancel, a stop) stays and goes out; one already handed to the broker (`published_at`,
    also before its PUBACK is recorded) cannot be called back (`infusing_after_stop` follows if the pump runs on).
    """
    queued = Command.objects.filter(device=device, session=session, kind=CommandKind.STOP_INFUSION,
                                    state=CommandState.QUEUED, published_at__isnull=True)  # fmt: skip
    withdrawn = [command for command in queued.select_related("session").order_by("created_at", "pk")
                 if is_time_out_stop(command)]  # fmt: skip
    for command in withdrawn:
        command_transition(device=device, command=command, to=CommandState.SUPERSEDED, now=now,
                           error=f"withdrawn unsent: {why}")  # fmt: skip
        event_record(
            device=device, session=session, kind="server.stop_withdrawn", received_at=now,
            payload={"commandId": str(command.command_id), "infusionId": session.infusion_id, "reason": why},
        )  # fmt: skip
    return withdrawn


def command_publish_check(*, command: Command, now: datetime) -> bool:
    """Whether the outbox may still publish this queued command (its re-check, just before it goes out).

    Only the server's own time-out STOP is looked at again (one lock, rarely): if its order runs on the pump
    meanwhile, or the pump reports infusing since that order was placed (the rule `_end_pending` queues it by),
    it is withdrawn (`time_out_stops_withdraw`) and not published. Anything a person asked for goes; a START's
    deadline (`expiresAt`) moves to run from now, its publication (`_start_deadline_from`, `command_published`).
    """
    if command.kind == CommandKind.START_INFUSION:
        return _start_deadline_from(command, now)
    if not is_time_out_stop(command):
        return True
    with transaction.atomic():
        device = device_lock(device_id=command.device.device_id)
        session = InfusionSession.objects.filter(pk=command.session_id).first()
        if not Command.objects.filter(pk=command.pk, state=CommandState.QUEUED).exists():
            return False  # moved on meanwhile (withdrawn, expired)
        if session is None:
            return True
        if session.status in SESSION_ON_PUMP_STATUSES:
            why = f"the pump runs infusion {session.infusion_id}"
        elif pump_reports_infusing_since(device=device, since=session.created_at):
            why = "the pump reports infusing"
        else:
            return True
        time_out_stops_withdraw(device=device, session=session, why=why, now=now)
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
