"""What a subscription request names, validated: a pump id, a ward, a list of pumps; and, for a refused request,
which streams its `error` replies name (`subscriptions.py` runs the requests)."""

import re
from typing import Any

from protocol import events
from realtime.sio.limits import MAX_DEVICE_SUBSCRIPTIONS, ConnectionLimits

DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WARD_OR_ALL = re.compile(r"^(\*|[-a-zA-Z0-9_]{1,32})$")


def parse_field(data: Any, name: str, pattern: re.Pattern, limits: ConnectionLimits) -> str:
    """The validated string field `name` of a request payload (`{name: ...}`), or a strike."""
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, str) or not pattern.fullmatch(value):  # `$` alone lets "id\n" through
        limits.strike(f"Expected {{{name}: ...}} with a valid {name}")
    return value


def parse_device_ids(data: Any, limits: ConnectionLimits) -> list[str]:
    """`subscribe:devices`' validated `deviceIds` (1 to the per-connection cap, duplicates dropped), or a strike."""
    value = data.get("deviceIds") if isinstance(data, dict) else None
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_DEVICE_SUBSCRIPTIONS
        or not all(isinstance(item, str) and DEVICE_ID.fullmatch(item) for item in value)
    ):
        limits.strike(f"Expected {{deviceIds: [...]}} with 1 to {MAX_DEVICE_SUBSCRIPTIONS} valid device ids")
    return list(dict.fromkeys(value))


def refused_targets(event: str, data: Any) -> list[dict[str, str]]:
    """What a refusal of this request names (`{"deviceId": ...}` per valid pump id, or `{"ward": ...}`), so that the
    client knows which stream is not coming; a refused `silence:ward` stops no feed: it names its ward as
    `requestWard`, so that a station of several wards says which of them was not silenced; nothing for others."""
    ward = data.get("ward") if isinstance(data, dict) else None
    ward = ward if isinstance(ward, str) and WARD_OR_ALL.fullmatch(ward) else None
    if event in (events.SUBSCRIBE_WARD, events.UNSUBSCRIBE_WARD):
        return [{"ward": ward}] if ward else []
    if event == events.SILENCE_WARD:
        return [{"requestWard": ward}] if ward and ward != "*" else []
    return [{"deviceId": device_id} for device_id in named_device_ids(event, data)]


def named_device_ids(event: str, data: Any) -> list[str]:
    """The valid pump ids a device request named (none for other requests), so that its refusal can name them.

    A `subscribe:devices` list longer than the cap names none: one refusal must not become thousands of `error`s.
    """
    if event in (events.SUBSCRIBE_DEVICE, events.UNSUBSCRIBE_DEVICE):
        candidates = [data.get("deviceId")] if isinstance(data, dict) else []
    elif event == events.SUBSCRIBE_DEVICES:
        candidates = data.get("deviceIds") if isinstance(data, dict) else None
        if not isinstance(candidates, list) or len(candidates) > MAX_DEVICE_SUBSCRIPTIONS:
            return []
    else:
        return []
    valid = (item for item in candidates if isinstance(item, str) and DEVICE_ID.fullmatch(item))
    return list(dict.fromkeys(valid))
