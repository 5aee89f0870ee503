"""The command outbox: queue a command, move it along its states, say whether it went out.

Every command ends `done`, `failed` (with a reason), `expired` or `superseded` (protocol v1.1): START
within the confirmation timeout + 10 s, the others within COMMAND_EXPIRY_S (30 s by default), which
is also the `expiresAt` the pump is told; those still under way at their deadline are ended by
`command_deadlines.py`. A STOP or PAUSE that does not end `done` raises the high `command_not_carried_out` alarm: a
person must act at the pump.
"""

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from devices import payloads
from devices.exceptions import PumpStreamError
from devices.housekeeping_selectors import start_lifetime
from devices.models import Command, Device, InfusionSession
from devices.services.alarms import alarm_clear, alarm_raise
from devices.services.changes import change_record, device_lock, event_record
from devices.states import (
    COMMAND_TRANSITIONS,
    COMMAND_UNSETTLED_STATES,
    AlarmPriority,
    AlarmSource,
    CommandKind,
    CommandState,
    SessionStatus,
    is_legal,
)
from protocol import events

STATE_TIMESTAMP = {
    CommandState.SENT: "sent_at",
    CommandState.DELIVERED: "delivered_at",
    CommandState.DONE: "done_at",
}
MUST_BE_CARRIED_OUT = (CommandKind.STOP_INFUSION, CommandKind.PAUSE_INFUSION)
NOT_CARRIED_OUT = "command_not_carried_out"
PUBLISHED_STATES = (CommandState.SENT, CommandState.DELIVERED)  # under way, and the pump can have acted on it
# A pump acts on a command up to its `expiresAt`; its report of doing so may arrive this much later
LATE_REPORT_ALLOWANCE = timedelta(seconds=5)
# A person's command under way when the pump restarted (`restart_commands`): the pump may have lost it in its reboot
LOST_IN_RESTART = "the pump restarted before it reported carrying it out"


def went_out(*, states: tuple = PUBLISHED_STATES) -> Q:
    """Commands in `states`, or still `queued` but handed to the broker (`handed`, its PUBACK not recorded yet): the
    pump can have received them and acted on them."""
    return Q(state__in=states) | (Q(state=CommandState.QUEUED) & handed())


def handed() -> Q:
    """Commands handed to the broker: published (`published_at`, the link took them), or marked handed by the outbox
    (`handed_at`, committed before paho had them) though their publication was never recorded (the bridge stalled or
    died in between: issue 15). Such a command may have reached the pump: never called "never sent" (`expired`,
    withdrawn unsent)."""
    return Q(published_at__isnull=False) | Q(handed_at__isnull=False)


def failed_within_deadline(*, now: datetime) -> Q:
    """Commands ended `failed` though handed to the broker (`published_at`: their PUBACK came late, or the pump had not
    acted yet; or `handed_at`, their outcome unknown) whose deadline has not passed (with `LATE_REPORT_ALLOWANCE` for
    the report): the broker may still deliver them at QoS 1 (the outbox cannot withdraw a PUBLISH already written), and
    a pump reporting what one asks may have carried it out (review 22). Not one published (or, unrecorded, handed)
    before the pump's latest boot (`Device.booted_at`): the run it went to is gone, whatever it failed of (lost in the
    restart, review 24 finding 5; its PUBACK late just before the reboot, review 25 finding 6), and the new run's
    reports say what it did: a pause of its own is not her Pause carried out."""
    within = Q(state=CommandState.FAILED, expires_at__gte=now - LATE_REPORT_ALLOWANCE) & handed()
    after_boot = Q(published_at__gt=F("device__booted_at")) | Q(
        published_at__isnull=True, handed_at__gt=F("device__booted_at")
    )
    return within & (Q(device__booted_at__isnull=True) | after_boot)


def is_published(command: Command, *, states: tuple = PUBLISHED_STATES) -> bool:
    """Whether this command went out (`went_out`), for a command already read."""
    was_handed = command.published_at is not None or command.handed_at is not None
    return command.state in states or (command.state == CommandState.QUEUED and was_handed)


def command_answered(
    device: Device, session: InfusionSession | None, kind: CommandKind | None, now: datetime
) -> Command | None:
    """The published command of `kind` a report answers (the oldest), if any: one never sent answers nothing. With none
    under way, one failed though handed to the broker, still within its deadline (`failed_within_deadline`): the
    broker delivered it late and the pump carried it out."""
    if kind is None:
        return None
    for published in (went_out(), failed_within_deadline(now=now)):
        pending = Command.objects.filter(published, device=device, kind=kind)
        if session is not None:
            pending = pending.filter(session=session)
        command = pending.select_related("created_by", "session").order_by("created_at", "pk").first()
        if command is not None:
            return command
    return None


def command_lifetime(kind: str) -> timedelta:
    """How long a command of `kind` may take to end (and after which the pump must ignore it)."""
    if kind == CommandKind.START_INFUSION:
        return start_lifetime()
    return timedelta(seconds=settings.PUMPSTREAM["COMMAND_EXPIRY_S"])


def command_queue(
    *,
    device: Device,
    kind: CommandKind,
    payload: dict,
    session: InfusionSession | None = None,
    user: Any = None,
    now: datetime | None = None,
    idempotency_key: str = "",
    clears_screen: bool = False,
    asked_at: datetime | None = None,
) -> Command:
    """Queue a command for the bridge to publish; call inside the transaction that holds `device_lock`.

    The pump's connectivity at this moment is kept on the record (a stale or offline pump's command is
    queued all the same: it ends `done` if the pump comes back and acts in time). `clears_screen`: a STOP that only
    clears the confirm screen of an order ended unconfirmed (`clearing_stops.py`), re-checked before it goes out.
    `asked_at`: when the person pressed, as her page told it (`requests.infusion_request`).
    """
    now = now or timezone.now()
    command = Command.objects.create(
        device=device, session=session, kind=kind, payload=payload,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        created_at=now, state_changed_at=now, expires_at=now + command_lifetime(kind),
        pump_connectivity=device.connectivity(now=now), idempotency_key=idempotency_key[:64],
        clears_screen=clears_screen, asked_at=asked_at,
    )  # fmt: skip
    event_record(
        device=device, session=session, kind="command.queued", user=user, received_at=now,
        payload={"commandId": str(command.command_id), "command": kind, "payload": payload,
                 "pumpConnectivity": command.pump_connectivity},
    )  # fmt: skip
    change_record(device=device, event=events.DEVICE_COMMAND, body=payloads.command_body(command))
    return command


def command_transition(
    *, device: Device, command: Command, to: CommandState, error: str = "", now: datetime | None = None,
    not_carried_out: bool = True,
) -> bool:  # fmt: skip
    """Move a command to `to`; returns False when it is already there (idempotent), raises if illegal.

    `not_carried_out`: a STOP or PAUSE ending `failed` or `expired` raises `command_not_carried_out` (False: the
    caller's own alarm sends the nurse to the pump, as a restart's `infusion_interrupted` does)."""
    if command.state == to:
        return False
    if not is_legal(COMMAND_TRANSITIONS, command.state, to):
        raise PumpStreamError(
            f"Command {command.command_id} cannot go from {command.state} to {to}", code="illegal_transition"
        )
    now = now or timezone.now()
    command.state = to
    command.state_changed_at = now
    command.error = error[:200]
    fields = ["state", "state_changed_at", "error"]
    if to in STATE_TIMESTAMP:
        setattr(command, STATE_TIMESTAMP[to], now)
        fields.append(STATE_TIMESTAMP[to])
    if to not in COMMAND_UNSETTLED_STATES:
        command.ended_at = now
        fields.append("ended_at")
    command.save(update_fields=fields)
    event_record(
        device=device, session=command.session, kind=f"command.{to}", received_at=now,
        payload={"commandId": str(command.command_id), "command": command.kind, "error": error},
    )  # fmt: skip
    change_record(device=device, event=events.DEVICE_COMMAND, body=payloads.command_body(command))
    if not_carried_out and to in (CommandState.FAILED, CommandState.EXPIRED) and command.kind in MUST_BE_CARRIED_OUT:
        _not_carried_out(device, command, now)
    return True


def _not_carried_out(device: Device, command: Command, now: datetime) -> None:
    """A STOP or PAUSE the pump may not have carried out: a person must act at the pump. But for a STOP that was only
    to clear the confirm screen of an order that ended unconfirmed (`clears_screen`): "did not stop" would send the
    nurse to stop whatever the pump runs, which nobody asked; she is asked to check the pump's screen instead.

    None for a person's command of an infusion a restart interrupted (one sent to the pump's new run, left under way:
    `restart_commands.commands_sent_to_the_new_run`), as for one the restart lost: the restart's own
    `infusion_interrupted` sends the nurse to the pump, and if that infusion runs again it is recalled then."""
    interrupted = command.session is not None and command.session.status == SessionStatus.INTERRUPTED
    if interrupted and not command.clears_screen:
        return
    verb = "stop" if command.kind == CommandKind.STOP_INFUSION else "pause"
    why = f"{command.state}: {command.error or 'no answer'}"
    message = f"The pump did not {verb} ({why}): act at the pump"
    priority = AlarmPriority.HIGH
    if command.clears_screen:
        message = (f"The pump may still show the ended order on its screen ({why}): check the pump's screen and "
                   f"dismiss it there; an infusion the pump runs goes on")  # fmt: skip
        priority = AlarmPriority.MEDIUM
    alarm_raise(
        device=device, session=command.session, type=NOT_CARRIED_OUT, priority=priority, source=AlarmSource.SERVER,
        now=now, details={"commandId": str(command.command_id), "state": command.state}, message=message,
    )  # fmt: skip


def command_not_carried_out_clear(
    *, device: Device, session: InfusionSession | None, reason: str, now: datetime
) -> None:
    """The infusion a lost STOP/PAUSE was for is paused or ended: nobody needs to act at the pump for it.

    Only that infusion's alarm: `session`'s, or (None) the one of a STOP of the pump's own infusion, without an
    order. Another order's end (a time-out of an order the busy pump ignored) leaves the alarm of a STOP the pump
    did not carry out on the infusion it still runs.
    """
    if session is None:
        alarm_clear(device=device, types=[NOT_CARRIED_OUT], reason=reason, now=now, without_session=True)
    else:
        alarm_clear(device=device, types=[NOT_CARRIED_OUT], reason=reason, now=now, session=session)


def command_advance(*, device_id: str, command_pk: int, to: CommandState, now: datetime, error: str = "") -> bool:
    """The outbox's way to move a command (sent on PUBACK, failed unacknowledged).

    Locks the pump, and skips quietly when the command has moved on meanwhile (a pump's fast reply).
    """
    return command_move_locked(device_id, command_pk, lambda command: (to, error), now)


def command_move_locked(
    device_id: str, command_pk: int, choose: Callable[[Command], tuple[CommandState, str] | None], now: datetime
) -> bool:
    """Move a command to the state `choose` picks from the row as it is once the pump is locked (None: leave it): the
    outbox's moves (`command_advance`) and the ends at the deadline (`command_deadlines.py`)."""
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return False  # the pump was deleted meanwhile
        device = device_lock(device_id=device_id)
        command = Command.objects.select_related("session", "created_by").filter(pk=command_pk).first()
        chosen = choose(command) if command is not None else None
        if chosen is None or not is_legal(COMMAND_TRANSITIONS, command.state, chosen[0]):
            return False
        return command_transition(device=device, command=command, to=chosen[0], error=chosen[1], now=now)


def commands_settle(
    *, device: Device, kinds: tuple, to: CommandState, now: datetime, session: InfusionSession | None = None,
    states: tuple = COMMAND_UNSETTLED_STATES, published: bool = False,
) -> list[Command]:  # fmt: skip
    """Move the pump's unsettled commands of `kinds` (of `session` if given) to `to`; returns them.

    `published`: those in `states` and also those still `queued` but handed to the broker (`went_out`)."""
    in_states = went_out(states=states) if published else Q(state__in=states)
    pending = Command.objects.filter(in_states, device=device, kind__in=kinds)
    if session is not None:
        pending = pending.filter(session=session)
    moved = []
    for command in pending.select_related("session", "created_by").order_by("created_at", "pk"):
        if is_legal(COMMAND_TRANSITIONS, command.state, to):
            command_transition(device=device, command=command, to=to, now=now)
            moved.append(command)
    return moved


def command_withdraw(
    *, device: Device, command: Command, session: InfusionSession, now: datetime, error: str, audit: str, details: dict
) -> None:
    """A queued command the server takes back before the pump acts on it: `superseded` with `error` (what the
    screens show), and an audit event `audit` of `session` by the person who asked for it, naming the command and
    `details` (why)."""
    command_transition(device=device, command=command, to=CommandState.SUPERSEDED, now=now, error=error)
    event_record(device=device, session=session, kind=audit, received_at=now, user=command.created_by,
                 payload={"commandId": str(command.command_id), **details})  # fmt: skip


def commands_supersede(*, device: Device, session: InfusionSession, now: datetime, kept: Collection[int] = ()) -> None:
    """A session ended: its commands still under way are superseded (never published afterwards), but those in `kept`
    (pks)."""
    pending = Command.objects.filter(device=device, session=session, state__in=COMMAND_UNSETTLED_STATES)
    pending = pending.exclude(pk__in=kept)
    for command in pending.select_related("session", "created_by").order_by("created_at", "pk"):
        command_transition(device=device, command=command, to=CommandState.SUPERSEDED, now=now,
                           error=f"the infusion ended {session.status}")  # fmt: skip


def command_repeat_find(
    *, device: Device, kind: CommandKind, session: InfusionSession | None, idempotency_key: str
) -> Command | None:
    """The command a repeated request means: the same idempotency key, or an identical one still under way.

    A key once used for another command (another kind, or another infusion) is refused, never answered with that
    command: a STOP sent with a PAUSE's key would otherwise be answered "accepted" with the PAUSE, and never sent.
    """
    if idempotency_key:
        same_key = Command.objects.filter(device=device, idempotency_key=idempotency_key[:64]).first()
        if same_key is not None and (same_key.kind, same_key.session_id) != (kind, session.pk if session else None):
            raise PumpStreamError(f"This Idempotency-Key was already used for {same_key.kind}: send this request "
                                  "with a new key", code="idempotency_conflict")  # fmt: skip
        if same_key is not None:
            return same_key
    return Command.objects.filter(device=device, kind=kind, session=session, state__in=COMMAND_UNSETTLED_STATES).first()
