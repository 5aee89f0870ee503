"""The command envelope the server publishes to `devices/{id}/commands` (contract v1.1), built and read here only."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class EnvelopeUnreadable(ValueError):
    """A command message that is not a JSON object with a `command`."""


@dataclass(frozen=True)
class CommandEnvelope:
    """One command as it travels: its kind, its payload, its id and the moment it must no longer be carried out."""

    command: str
    payload: dict = field(default_factory=dict)
    command_id: str = ""
    expires_at: str | None = None  # ISO-8601 as sent; a pump that cannot read it never treats it as expired
    timestamp: str | None = None

    def wire(self) -> dict:
        """The envelope as published: `command`, `payload`, `timestamp`, `commandId`, `expiresAt`."""
        return {"command": self.command, "payload": self.payload, "timestamp": self.timestamp,
                "commandId": self.command_id, "expiresAt": self.expires_at}  # fmt: skip

    def encoded(self) -> str:
        """The envelope as the JSON text of the MQTT message."""
        return json.dumps(self.wire())

    def is_expired(self, now: datetime | None = None) -> bool:
        """Whether `expiresAt` lies in the past; an absent or unreadable one never expires."""
        if not isinstance(self.expires_at, str) or not self.expires_at:
            return False
        try:
            moment = datetime.fromisoformat(self.expires_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment < (now or datetime.now(UTC))


def command_envelope_build(
    *, kind: str, payload: dict, command_id: str, expires_at: datetime, now: datetime
) -> CommandEnvelope:
    """The envelope of one command, its times as aware ISO-8601."""
    return CommandEnvelope(command=kind, payload=payload, command_id=command_id,
                           expires_at=expires_at.isoformat(), timestamp=now.isoformat())  # fmt: skip


def command_envelope_parse(raw: bytes | str) -> CommandEnvelope:
    """Read a command message as a pump does; raises `EnvelopeUnreadable` when it has no `command`."""
    try:
        envelope: Any = json.loads(raw)
        command = envelope["command"]
        payload = envelope.get("payload") or {}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EnvelopeUnreadable(repr(exc)) from exc
    expires_at = envelope.get("expiresAt")
    return CommandEnvelope(command=str(command), payload=payload if isinstance(payload, dict) else {},
                           command_id=str(envelope.get("commandId", "") or ""),
                           expires_at=expires_at if isinstance(expires_at, str) else None,
                           timestamp=envelope.get("timestamp"))  # fmt: skip
