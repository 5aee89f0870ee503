"""The base every Socket.IO payload model stands on (pydantic v2, no Django) and the one codec to and from the wire.

`payload_to_wire` is the only place a payload becomes the JSON-ready dict clients receive (the change log stores
that dict, the API and the pages embed it), and `payload_from_wire` reads one back. The models are in
`protocol/payloads.py` (the device events) and `protocol/ward_payloads.py` (the ward feeds and the stream's own).

Models are strict and closed: a builder that passes a field the model does not declare, or a value of the
wrong type, is refused with `pydantic.ValidationError` where the model is built. The one exception is what
a pump itself reported (`PumpReport`: its progress, confirmation, completion), whose unknown fields the
contract passes through ("stored, never trusted"); the fields the server adds to them are still typed.

Numbers the database holds as integers are `int` and stay integers on the wire (85, never 85.0); a value a
pump reported is `Number` (int or float, as sent). Times are aware datetimes, written as
`datetime.isoformat()` in UTC (`2026-12-03T04:09:10.123456+00:00`), as the browser has always parsed them.
A field with a default is optional on the wire: left out unless the builder sets it.
"""

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


Timestamp = Annotated[AwareDatetime, PlainSerializer(_iso, return_type=str)]
Number = int | float  # strict: an int stays an int
DeviceTimestamp = int | float | str | None  # a pump's own clock, as sent (uptime ms, ISO text, H:M:S.ms)
ConnectivityName = Literal["unknown", "online", "stale", "offline"]
PumpStateName = Literal["idle", "running", "paused"]
PriorityName = Literal["high", "medium", "low"]
SessionStatusName = Literal[
    "pending", "running", "paused", "completed", "stopped", "rejected", "timed_out", "cancelled", "interrupted"
]
CommandKindName = Literal["START_INFUSION", "PAUSE_INFUSION", "RESUME_INFUSION", "STOP_INFUSION"]
CommandStateName = Literal["queued", "sent", "delivered", "done", "failed", "expired", "superseded"]


class Payload(BaseModel):
    """A payload (or a part of one) the server writes: strict, closed, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class PumpReport(Payload):
    """What a pump reported, passed through: its unknown fields are kept (the contract), declared ones typed."""

    model_config = ConfigDict(extra="allow")


PayloadT = TypeVar("PayloadT", bound=Payload)


def payload_to_wire(payload: Payload) -> dict[str, Any]:
    """The one serialiser: a payload as the JSON-ready dict clients receive (optional fields never set left out)."""
    return payload.model_dump(mode="json", exclude_unset=True)


def payload_from_wire(model: type[PayloadT], wire: dict | str | bytes) -> PayloadT:
    """A payload read back from its wire form (a dict as sent, or its JSON text); raises ValidationError."""
    return model.model_validate_json(wire if isinstance(wire, str | bytes) else json.dumps(wire))
