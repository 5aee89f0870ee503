"""What of a refused report can still be read: the contract's fields, the odd ones left out.

A `completion`, an `actions` report, an answer on `infusion` or a `status` that the schema refuses for one odd field (a
`timestamp` object, a negative `seq`, a `reason` over 500 characters, a rate as text in `parameters`, a battery at 101)
still says what the pump did with the infusion: finished, paused, stopped, rejected, running again, idle. Lost, the
screen shows the infusion as it was (review 19). An `error` refused for its envelope alone (`seq`, `bootId`,
`timestamp`) is still the alarm it names (review 23: raised as the generic `unreadable_alarm`, a firmware sending such
a field oddly on every alarm had its occlusion only counted on the first one, acknowledged). Such a report is read
again without the fields the schema refused, as long as none of them is one the contract needs to apply it
(`ESSENTIAL`: what happened and the infusion it names, an alarm's type);
the names of those left out go under `refusedFields`, and why each was refused in `report.refusals`.
Nothing is guessed: an essential field is read only as the schema reads it (a number is no `infusionId`, `"true"` no
`completed`), and a report whose essential field is missing or odd is not read at all.
"""

from typing import Any

from pydantic import ValidationError

from protocol import topics
from protocol.schemas import SCHEMAS, DevicePayload
from protocol.unknown_fields import unknown_fields_bound

# Per topic, the fields a report cannot be applied without: what the pump did, and which infusion it names (a report
# naming one unreadably may be about another infusion: it must move none). `deviceId` too: it may name another pump.
# A status names its infusion in `infusionId` or `currentInfusion.infusionId` (`StatusPayload`). An alarm's text fields
# cannot be refused (`ErrorPayload` reads any form), but its `type` in an odd form (an object) can: read without it, it
# would be a `device_error` at its own severity, not the high `unreadable_alarm` (when in doubt, alarm).
ESSENTIAL: dict[str, tuple[str, ...]] = {
    topics.COMPLETION: ("completed", "infusionId", "deviceId"),
    topics.ACTIONS: ("action", "infusionId", "deviceId"),
    topics.INFUSION: ("confirmed", "infusionId", "deviceId"),
    topics.STATUS: ("status", "infusionId", "currentInfusion", "deviceId"),
    topics.ERROR: ("type", "deviceId"),
}
# A refused `degraded`/`issue` status is not read in part: it raises `device_degraded` saying the rest of the report
# could not be read (review 15, `realtime/bridge/refusals.py`), which is what the nurse needs of it.
NOT_READ_IN_PART = ("degraded", "issue")
REFUSED_FIELDS = "refusedFields"  # the names of the fields left out, kept with the report as stored
PASSES = 3  # a schema reports every odd field at once: the second pass reads the rest


def payload_salvage(kind: str, document: dict) -> DevicePayload | None:
    """The report `document` makes without the fields its schema refused, naming them under `refusedFields`; None for
    another topic, or when a field in `ESSENTIAL` is missing or refused (then nothing of it is applied)."""
    essential = ESSENTIAL.get(kind)
    if essential is None or (kind == topics.STATUS and _said(document) in NOT_READ_IN_PART):
        return None
    kept, refused, why = dict(document), [], {}
    for _ in range(PASSES):
        try:
            report = SCHEMAS[kind].model_validate(kept)
        except ValidationError as exc:
            odd = {str(error["loc"][0]) if error["loc"] else "" for error in exc.errors()}
            if odd & {"", *essential} or not odd <= kept.keys():
                return None
            refused += sorted(odd)
            why.update(_reasons(exc))
            kept = {name: value for name, value in kept.items() if name not in odd}
            continue
        report._fields_not_stored = unknown_fields_bound(report)
        report.__pydantic_extra__[REFUSED_FIELDS] = refused
        report._refusals = why
        return report
    return None


def refused_fields(report: DevicePayload) -> list[str]:
    """The fields a report read in part was applied without (none for a report the schema accepted): from what the
    salvage recorded, never from a `refusedFields` the pump itself sent (an unknown field, stored, never trusted)."""
    return list(report.refusals)


def _reasons(exc: ValidationError) -> dict[str, str]:
    """Per refused field, why: its first errors as "where: what" ("flowRateMlMin: Input should be a valid number")."""
    reasons: dict[str, list[str]] = {}
    for error in exc.errors():
        name, where = str(error["loc"][0]), ".".join(str(part) for part in error["loc"][1:])
        reasons.setdefault(name, []).append(f"{where}: {error['msg']}" if where else error["msg"])
    return {name: "; ".join(texts[:3])[:200] for name, texts in reasons.items()}


def _said(document: dict) -> Any:
    status = document.get("status")
    return status.strip().lower() if isinstance(status, str) else status
