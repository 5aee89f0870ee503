"""What is kept of a pump report's unknown fields and free-form objects (`details`, `currentInfusion`, `summary`...).

A pump may send any field; the schemas keep unknown ones (stored, never trusted). The bridge's budgets count
messages, not bytes, and every non-routine report is stored in the event log for 90 days: 15 KB of junk fields at
the report budget (5/s) was ~6.7 GB a day from one pump (review 15, finding 6). So a parsed report keeps at most
`MAX_UNKNOWN_BYTES` of them together; an object that was cut says so under `notStored` (fields and bytes). The
contract's own fields are never cut (each has its own bound in the schema).
"""

import json
from functools import cache
from typing import Any, get_args

from pydantic import BaseModel

# What is kept of a report's unknown fields and free-form objects together.
MAX_UNKNOWN_BYTES = 2048
NOT_STORED = "notStored"  # the marker an object that was cut carries: {"fields": how many, "bytes": their size}
READ_BY_THE_SERVER = "infusionId"  # the one unknown field read (a status's infusion): kept, when it can be one


def _json_bytes(value: Any) -> int:
    """A decoded JSON value's size as JSON text with every non-ASCII character escaped (a bound on its bytes)."""
    return len(json.dumps(value))


def _always_kept(name: str, value: Any) -> bool:
    return name == READ_BY_THE_SERVER and isinstance(value, str) and len(value) <= 64


@cache
def _free_form_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a schema that hold any object: a `dict`, or a model with unknown fields of its own."""

    def free(annotation: Any) -> bool:
        return any(option is dict or (isinstance(option, type) and issubclass(option, BaseModel))
                   for option in get_args(annotation) or (annotation,))  # fmt: skip

    return tuple(name for name, info in model.model_fields.items() if free(info.annotation))


def _bounded(fields: dict, left: int) -> tuple[dict, int, int]:
    """(the fields kept in their order, bytes left, fields cut): each field kept while it fits in `left`; an object
    that was cut carries `notStored`."""
    whole = _json_bytes(fields)
    if whole <= left:
        return fields, left - whole, 0
    kept, cut, cut_bytes = {}, 0, 0
    for name, value in fields.items():
        size = _json_bytes({name: value})
        if _always_kept(name, value) or size <= left:
            kept[name] = value
            left -= 0 if _always_kept(name, value) else size
        else:
            cut, cut_bytes = cut + 1, cut_bytes + size
    if not cut:
        return fields, left, 0
    kept[NOT_STORED] = {"fields": cut, "bytes": cut_bytes}
    return kept, left, cut


def unknown_fields_bound(report: BaseModel) -> int:
    """Cut a parsed report's free-form objects (in the schema's order), then its unknown fields, to
    `MAX_UNKNOWN_BYTES` together, in place; returns how many fields were cut."""
    left, cut = MAX_UNKNOWN_BYTES, 0
    for name in _free_form_fields(type(report)):
        value = getattr(report, name)
        holder = value if isinstance(value, BaseModel) else None
        fields = holder.__pydantic_extra__ if holder is not None else value
        if not fields:
            continue
        kept, left, cut_here = _bounded(fields, left)
        if cut_here and holder is not None:
            holder.__pydantic_extra__ = kept
        elif cut_here:
            setattr(report, name, kept)
        cut += cut_here
    if report.__pydantic_extra__:
        report.__pydantic_extra__, left, cut_here = _bounded(report.__pydantic_extra__, left)
        cut += cut_here
    return cut
