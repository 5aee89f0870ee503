"""The `silence:ward` request (contract v1.1): check who asks, then the silence service does the rest."""

import re
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from devices.access_selectors import ward_has_member, ward_named
from devices.exceptions import PumpStreamError
from devices.services.silences import REASON_MAX, SILENCE_PERMISSION, ward_silence, ward_silence_end
from devices.ward_payloads import silence_body
from protocol.payload_codec import payload_to_wire
from realtime.sio.auth import Principal
from realtime.sio.limits import ConnectionLimits, RequestRefused

WARD = re.compile(r"^[-a-zA-Z0-9_]{1,32}$")
# A silence asked longer ago than this, on the server's clock, is refused: a request held in a network that stalled
# (TCP delivers it once the network recovers) asked for what the station showed then, not now (review 32).
ASKED_AT_MOST_S = 5.0


def silence_request(principal: Principal, data: Any, limits: ConnectionLimits) -> dict:
    """Silence (or, with `seconds: 0`, end the silence of) one ward; the `ward:silence` body to announce.

    Only a signed-in person who may acknowledge alarms and belongs to the ward (staff: any ward) may
    silence it: a silence is a clinical act with a name on it, so a service account's token may not.
    A malformed request (no ward, a reason that is not text) is a strike on the connection's `limits`.
    """
    ward_code = data.get("ward") if isinstance(data, dict) else None
    if not isinstance(ward_code, str) or not WARD.fullmatch(ward_code):
        limits.strike("Expected {ward: ...} naming one ward")
    user = principal.user
    if principal.account is not None or user is None or not user.has_perm(SILENCE_PERMISSION):
        raise RequestRefused("Not permitted to silence this ward")
    ward = ward_named(ward_code)
    if ward is None:
        raise RequestRefused("Invalid ward")
    if not user.is_staff and not ward_has_member(ward=ward, user=user):
        raise RequestRefused("Not permitted to silence this ward")
    _refuse_if_asked_long_ago(data.get("askedAt"), limits, now=timezone.now())
    seconds, reason = data.get("seconds"), data.get("reason", "")
    if not isinstance(reason, str):
        limits.strike("Expected {reason: ...} as text")
    try:
        if seconds == 0 and not isinstance(seconds, bool):
            silence = ward_silence_end(ward=ward, user=user)
        else:
            silence = ward_silence(ward=ward, user=user, seconds=seconds, reason=reason[:REASON_MAX])
    except PumpStreamError as refused:
        raise RequestRefused(refused.message) from refused
    return payload_to_wire(silence_body(ward.code, silence, now=timezone.now()))


def _refuse_if_asked_long_ago(asked_at: Any, limits: ConnectionLimits, *, now: datetime) -> None:
    """Refuse a silence whose `askedAt` (when the person pressed, on the server's clock as the page knows it) is more
    than ASKED_AT_MOST_S ago: the station's button said "Silence the ward" then, and a screen that stopped being live
    since silences only itself; a request it sent into a stalled network must not silence every screen of the ward
    later, under that person's name. No `askedAt` (an integration's own client): not judged."""
    if asked_at is None:
        return
    try:
        moment = parse_datetime(asked_at) if isinstance(asked_at, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        limits.strike("Expected {askedAt: ...} as an ISO 8601 time with its offset")
    age_s = (now - moment).total_seconds()
    if age_s > ASKED_AT_MOST_S:
        raise RequestRefused(f"Silence asked {age_s:.0f} s ago, held up by the network: nothing silenced. Ask again")
