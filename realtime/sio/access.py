"""Who may watch what, as a subscription request asks it: one pump, every pump at once, a ward's scope (the error
message to send when not). The reads are `devices/access_selectors.py`'s; `rights.py` asks again while connected."""

from devices.access_selectors import device_ids_visible_to, device_is_visible_to, ward_codes_of
from devices.selectors import device_exists, ward_exists
from realtime.sio.auth import Principal
from realtime.sio.ward_feed import ALL_WARDS, WardScope

INVALID_DEVICE = "Invalid Device ID"


def device_access(principal: Principal, device_id: str) -> str | None:
    """None when the principal may watch the pump, else the error message to send."""
    if device_is_visible_to(principal.subject, device_id):
        return None
    if not device_exists(device_id):
        return INVALID_DEVICE
    return "Not permitted to watch this pump"


def visible_device_ids(principal: Principal) -> frozenset[str]:
    """The ids of every pump the principal may watch now (one query)."""
    return frozenset(device_ids_visible_to(principal.subject))


def ward_scope(principal: Principal, ward: str) -> WardScope | str:
    """The wards a ward subscription covers, or the error message to send."""
    subject = principal.subject
    sees_all = bool(getattr(subject, "all_wards", False) or getattr(subject, "is_staff", False))
    if ward == ALL_WARDS:
        codes = None if sees_all else set(_member_ward_codes(principal))
        return WardScope(label=ALL_WARDS, codes=codes)
    if not ward_exists(ward):
        return "Invalid ward"
    if not sees_all and ward not in _member_ward_codes(principal):
        return "Not permitted to watch this ward"
    return WardScope(label=ward, codes={ward})


def _member_ward_codes(principal: Principal) -> list[str]:
    """The wards the principal belongs to, pumps or not (a nurse of an empty ward still hears its silences)."""
    return ward_codes_of(principal.subject)
