"""The command outbox: queue a command, and move it along its states."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Command, Device, InfusionSession
from devices.services.changes import change_record, event_record
from devices.states import COMMAND_TRANSITIONS, CommandKind, CommandState, is_legal
from realtime import events

STATE_TIMESTAMP = {
    CommandState.SENT: "sent_at",
    CommandState.DELIVERED: "delivered_at",
    CommandState.DONE: "done_at",
}


def command_queue(
    *,
    device: Device,
    kind: CommandKind,
    payload: dict,
    session: InfusionSession | None = None,
    user: Any = None,
    now: datetime | None = None,
) -> Command:
    """Queue a command for the bridge to publish; call inside the transaction that holds `device_lock`."""
    now = now or timezone.now()
    command = Command.objects.create(
        device=device,
        session=session,
        kind=kind,
        payload=payload,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        created_at=now,
        state_changed_at=now,
        expires_at=now + timedelta(seconds=settings.PUMPSTREAM["COMMAND_EXPIRY_S"]),
    )
    event_record(
        device=device,
        session=session,
        kind="command.queued",
        payload={"commandId": str(command.command_id), "command": kind, "payload": payload},
        user=user,
        received_at=now,
    )
    change_record(device=device, event=events.DEVICE_COMMAND, body=events.command_body(command))
    return command


def command_transition(
    *, device: Device, command: Command, to: CommandState, error: str = "", now: datetime | None = None
) -> bool:
    """Move a command to `to`; returns False when it is already there (idempotent), raises if illegal."""
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
    if to in STATE_TIMESTAMP:
        setattr(command, STATE_TIMESTAMP[to], now)
    command.save(update_fields=["state", "state_changed_at", "error", *filter(None, [STATE_TIMESTAMP.get(to)])])
    event_record(
        device=device,
        session=command.session,
        kind=f"command.{to}",
        payload={"commandId": str(command.command_id), "command": command.kind, "error": error},
        received_at=now,
    )
    change_record(device=device, event=events.DEVICE_COMMAND, body=events.command_body(command))
    return True


def command_envelope(command: Command) -> dict:
    """The MQTT envelope for a command, as the contract defines it."""
    return {
        "command": command.kind,
        "payload": command.payload,
        "timestamp": timezone.now().isoformat(),
        "commandId": str(command.command_id),
        "expiresAt": command.expires_at.isoformat(),
    }
