"""The bridge's internal road into Daphne: its namespace, its event and how a change travels on it.

Issue 16's "one road per pump" replaces this road; the event names and `DeviceChange` are in `protocol/events.py`.
"""

from protocol.events import DEVICE_EVENTS, DeviceChange

INTERNAL_NAMESPACE = "/internal"
INTERNAL_FORWARD = "forward"  # payload: {"changes": [change_to_wire(...), ...]}


def change_to_wire(change: DeviceChange) -> dict:
    """A change as the bridge forwards it to Daphne over the internal connection."""
    return {"deviceId": change.device_id, "seq": change.seq, "event": change.event, "body": change.body,
            "ward": change.ward_code, "registration": change.registration}  # fmt: skip


def change_from_wire(item: dict) -> DeviceChange:
    """The inverse of `change_to_wire`; raises KeyError or TypeError on a malformed item."""
    if item["event"] not in DEVICE_EVENTS or not isinstance(item["body"], dict):
        raise TypeError(f"not a device change: {item.get('event')!r}")
    return DeviceChange(device_id=str(item["deviceId"]), seq=int(item["seq"]), event=item["event"],
                        body=item["body"], ward_code=item.get("ward"),
                        registration=_optional_int(item.get("registration")))  # fmt: skip


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)
