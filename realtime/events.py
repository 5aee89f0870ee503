"""The bridge's internal road into Daphne (wakes only) and how a change travels on the Channels layer.

The event names and `DeviceChange` are in `protocol/events.py`.
"""

from protocol.events import DeviceChange

INTERNAL_NAMESPACE = "/internal"
INTERNAL_WAKE = "wake"  # the bridge committed changes: read the change log now (no payload is read)


def change_to_wire(change: DeviceChange) -> dict:
    """A change as one message of the Channels layer (the publisher to the `/ws/` consumers)."""
    return {"deviceId": change.device_id, "seq": change.seq, "event": change.event, "body": change.body,
            "ward": change.ward_code, "registration": change.registration}  # fmt: skip
