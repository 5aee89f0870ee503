"""What of a refused report about an infusion can still be read: the contract's fields, the odd ones left out.

A `completion`, an `actions` report or an answer on `infusion` that the schema refuses for one odd field (a `timestamp`
object, a negative `seq`, a `reason` over 500 characters, a rate as text in `parameters`) still says what the pump did
with the infusion: finished, paused, stopped, rejected. Lost, the screen shows the infusion running (review 19). Such a
report is read again without the fields the schema refused, as long as none of them is one the contract needs to apply
it (`ESSENTIAL`: what happened and the infusion it names); the names of those left out go under `refusedFields`.
Nothing is guessed: an essential field is read only as the schema reads it (a number is no `infusionId`, `"true"` no
`completed`), and a report whose essential field is missing or odd is not read at all.
"""

from pydantic import ValidationError

from protocol import topics
from protocol.schemas import SCHEMAS, DevicePayload
from protocol.unknown_fields import unknown_fields_bound

# Per topic, the fields a report cannot be applied without: what the pump did, and which infusion it names (a report
# naming one unreadably may be about another infusion: it must move none). `deviceId` too: it may name another pump.
ESSENTIAL: dict[str, tuple[str, ...]] = {
    topics.COMPLETION: ("completed", "infusionId", "deviceId"),
    topics.ACTIONS: ("action", "infusionId", "deviceId"),
    topics.INFUSION: ("confirmed", "infusionId", "deviceId"),
}
REFUSED_FIELDS = "refusedFields"  # the names of the fields left out, kept with the report as stored
PASSES = 3  # a schema reports every odd field at once: the second pass reads the rest


def payload_salvage(kind: str, document: dict) -> DevicePayload | None:
    """The report `document` makes without the fields its schema refused, naming them under `refusedFields`; None for
    another topic, or when a field in `ESSENTIAL` is missing or refused (then nothing of it is applied)."""
    essential = ESSENTIAL.get(kind)
    if essential is None:
        return None
    kept, refused = dict(document), []
    for _ in range(PASSES):
        try:
            report = SCHEMAS[kind].model_validate(kept)
        except ValidationError as exc:
            odd = {str(error["loc"][0]) if error["loc"] else "" for error in exc.errors()}
            if odd & {"", *essential} or not odd <= kept.keys():
                return None
            refused += sorted(odd)
            kept = {name: value for name, value in kept.items() if name not in odd}
            continue
        report._fields_not_stored = unknown_fields_bound(report)
        report.__pydantic_extra__[REFUSED_FIELDS] = refused
        return report
    return None
