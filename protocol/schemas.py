"""Payload schemas per device topic (pydantic v2), with the original firmware's forms coerced as the contract says."""

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from protocol import limits, topics
from protocol.safejson import JsonLimits, JsonRefused, json_decode
from protocol.unknown_fields import unknown_fields_bound
from protocol.visible_text import shows_nothing, without_bidi_controls

# At least everything an order may be (protocol/limits.py); far above any pump's reservoir: larger is a
# broken or hostile sender.
MAX_VOLUME_ML = limits.WIRE_MAX_VOLUME_ML
MAX_RATE_ML_MIN = limits.WIRE_MAX_RATE_ML_MIN
MAX_TIME_MIN = limits.WIRE_MAX_TIME_MIN
MAX_SEQ = 2**63 - 1  # the database stores a device seq as a signed 64-bit integer
MAX_TEXT = 500
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}[T ].*(Z|[+-]\d{2}:?\d{2})$")

STATUS_VALUES = (
    "online", "offline", "healthy", "idle", "started", "running", "paused", "stopped", "completed",
    "received_start_command", "rejected", "degraded", "issue", "testing",
)  # fmt: skip
# Presence: the only statuses a pump retains (its `online` on connect and its Last Will's `offline`).
PRESENCE_STATUSES = ("online", "offline")


class PayloadError(ValueError):
    """A payload the contract does not accept; `reason` is the dead-letter reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Volume = Annotated[float, Field(ge=0, le=MAX_VOLUME_ML)]
Minutes = Annotated[float, Field(ge=0, le=MAX_TIME_MIN)]
Rate = Annotated[float, Field(ge=0, le=MAX_RATE_ML_MIN)]
Percent = Annotated[float, Field(ge=0, le=100)]
# A pump's words (reasons, sources, firmware), kept without direction controls (protocol/pump_text.py)
Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(without_bidi_controls)]
INFUSION_ID_MAX = 64
InfusionId = Annotated[str, Field(min_length=1, max_length=INFUSION_ID_MAX)]
StatusInfusionId = Annotated[str, Field(max_length=INFUSION_ID_MAX)]  # a status's: empty names none
DeviceTimestamp = int | float | Annotated[str, Field(max_length=64)] | None


class DevicePayload(BaseModel):
    """Fields every device message may carry; unknown fields are kept (stored, never trusted), within
    `MAX_UNKNOWN_BYTES` together with the free-form objects (`protocol/unknown_fields.py`)."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    deviceId: Annotated[str, Field(pattern=topics.DEVICE_ID_RE.pattern)] | None = None
    timestamp: DeviceTimestamp = None
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)] | None = None
    bootId: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    _fields_not_stored: int = PrivateAttr(default=0)
    _refusals: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def fields_not_stored(self) -> int:
        """How many unknown fields (or fields of free-form objects) were cut to keep the report within its bound."""
        return self._fields_not_stored

    @property
    def refusals(self) -> dict[str, str]:
        """Read in part (`protocol/salvage.py`): why each field left out was refused; empty for an accepted report."""
        return self._refusals

    @property
    def message_key(self) -> tuple[str, int] | None:
        """(bootId, seq) when the pump sent both: together they identify one message."""
        return (self.bootId, self.seq) if self.seq is not None and self.bootId is not None else None


class StatusPayload(DevicePayload):
    """A status names its infusion in `infusionId` or `currentInfusion.infusionId`: a string of at most 64 characters
    (empty names none: today's firmware sends `""` when idle); one in any other form is refused, for the status may be
    about another infusion than the one it would otherwise be applied to."""

    status: Annotated[Literal[STATUS_VALUES], BeforeValidator(_lower)]  # type: ignore[valid-type]
    batteryLevel: Annotated[float, Field(ge=0, le=100)] | None = None
    firmwareVersion: Annotated[str, Field(max_length=64), AfterValidator(without_bidi_controls)] | None = None
    uptime: DeviceTimestamp = None
    infusionId: StatusInfusionId | None = None
    currentInfusion: dict | None = None
    progress: dict | None = None

    @field_validator("currentInfusion")
    @classmethod
    def _names_an_infusion_readably(cls, value: dict | None) -> dict | None:
        named = value.get("infusionId") if isinstance(value, dict) else None
        if named is not None and not (isinstance(named, str) and len(named) <= INFUSION_ID_MAX):
            raise ValueError(f"infusionId must be a string of at most {INFUSION_ID_MAX} characters")
        return value


class ProgressPayload(DevicePayload):
    timeRemainingMin: Minutes | None = None
    volumeRemainingMl: Volume | None = None
    deliveredVolumeMl: Volume | None = None
    elapsedTimeMin: Minutes | None = None
    progressPercent: Percent | None = None
    flowRate: Rate | None = None
    status: Literal["running", "paused", "completed"] | None = None
    infusionId: InfusionId | None = None

    @field_validator("progressPercent", mode="before")
    @classmethod
    def _legacy_percent(cls, value: Any) -> Any:
        """The legacy `{time, volume}` object: the volume share is what was delivered."""
        if isinstance(value, dict):
            return value.get("volume", value.get("time"))
        return value


class ReportedParameters(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    flowRateMlMin: Rate | None = None
    plannedVolumeMl: Volume | None = None
    plannedTimeMin: Minutes | None = None
    bolusEnabled: bool | None = None
    bolusVolumeMl: Volume | None = None


class InfusionPayload(DevicePayload):
    infusionId: InfusionId
    confirmed: bool
    confirmedAt: DeviceTimestamp = None
    parameters: ReportedParameters | None = None
    reason: Text | None = None  # why a START was refused (`confirmed: false`): `pump_busy`, `rejected_at_pump`, ...


class CompletionPayload(DevicePayload):
    completed: Literal[True]
    completedAt: DeviceTimestamp = None
    infusionId: InfusionId | None = None
    summary: dict | None = None


class ActionsPayload(DevicePayload):
    action: Literal["MANUAL_PAUSE", "MANUAL_RESUME", "MANUAL_STOP"]
    source: Text | None = None
    reason: Text | None = None
    infusionId: InfusionId | None = None


MAX_TYPE_TEXT = 200
MAX_CODE_TEXT = 64
MAX_SEVERITY_TEXT = 32


def _as_text(limit: int) -> Any:
    """Any scalar as text, cut to `limit`; an object or array as its JSON text (an alarm is never refused); without
    direction controls (protocol/pump_text.py)."""

    def coerce(value: Any) -> Any:
        if value is None or isinstance(value, str):
            return without_bidi_controls(value)[:limit] if isinstance(value, str) else None
        if isinstance(value, bool | int | float):
            return json.dumps(value)[:limit]
        return without_bidi_controls(json.dumps(value, ensure_ascii=False, default=str))[:limit]

    return BeforeValidator(coerce)


def _alarm_type(value: Any) -> Any:
    """The alarm's type as sent, trimmed, without direction controls; missing, empty or drawing nothing (zero-width
    characters: shown blank, review 36) is `device_error`; a number is its text."""
    value = without_bidi_controls(value) if isinstance(value, str) else value
    if value is None or (isinstance(value, str) and shows_nothing(value)):
        return "device_error"
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return value.strip()[:MAX_TYPE_TEXT] if isinstance(value, str) else value


def _details(value: Any) -> Any:
    """`details` is an object; anything else the pump put there is kept under `value`."""
    return value if value is None or isinstance(value, dict) else {"value": value}


class ErrorPayload(DevicePayload):
    """An alarm at the pump (v1.1): any text `type`, long text cut, `errorCode` string or number, any severity."""

    type: Annotated[str, BeforeValidator(_alarm_type)] = "device_error"
    severity: Annotated[str | None, _as_text(MAX_SEVERITY_TEXT)] = None
    message: Annotated[str | None, _as_text(MAX_TEXT)] = None
    errorMessage: Annotated[str | None, _as_text(MAX_TEXT)] = None
    details: Annotated[dict | None, BeforeValidator(_details)] = None
    errorCode: Annotated[str | None, _as_text(MAX_CODE_TEXT)] = None

    @property
    def text(self) -> str:
        """The message, or the legacy `errorMessage`."""
        return self.message or self.errorMessage or ""


class BolusPayload(DevicePayload):
    action: Annotated[str, Field(max_length=64), AfterValidator(without_bidi_controls)] | None = None
    infusionId: InfusionId | None = None
    bolusDelivered: Volume | None = None


class TestPayload(DevicePayload):
    test: Text | None = None


SCHEMAS: dict[str, type[DevicePayload]] = {
    topics.STATUS: StatusPayload,
    topics.PROGRESS: ProgressPayload,
    topics.INFUSION: InfusionPayload,
    topics.COMPLETION: CompletionPayload,
    topics.ACTIONS: ActionsPayload,
    topics.ERROR: ErrorPayload,
    topics.BOLUS: BolusPayload,
    topics.TEST: TestPayload,
}


def payload_decode(raw: bytes, *, max_bytes: int) -> dict:
    """Bytes → a JSON object through the one safe decoder (`safejson.json_decode`), an object at the top."""
    try:
        document = json_decode(raw, limits=JsonLimits(max_bytes=max_bytes))
    except JsonRefused as refused:
        raise PayloadError(refused.reason, refused.detail) from refused
    if not isinstance(document, dict):
        raise PayloadError("not_object", type(document).__name__)
    return document


def payload_parse(kind: str, document: dict) -> DevicePayload:
    """Validate a decoded payload against its topic's schema, unknown fields cut to `MAX_UNKNOWN_BYTES`; raises
    PayloadError("schema", ...)."""
    try:
        report = SCHEMAS[kind].model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or kind
        raise PayloadError("schema", f"{where}: {first['msg']}"[:300]) from exc
    report._fields_not_stored = unknown_fields_bound(report)
    return report


def device_timestamp_parse(value: Any) -> datetime | None:
    """A device timestamp as a wall-clock time when it is ISO-8601 with an offset; uptime and naive stay raw."""
    if not isinstance(value, str) or not ISO_WITH_OFFSET.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else None
    except (ValueError, OverflowError):  # an unset clock at year 1 (or 9999) with an offset: beyond UTC's range
        return None
