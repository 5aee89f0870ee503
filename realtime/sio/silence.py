"""The `silence:ward` request (contract v1.1): check who asks, then the silence service does the rest."""

import re
from datetime import datetime
from typing import Any

from django.utils import timezone

from devices.access_selectors import ward_has_member, ward_named
from devices.exceptions import PumpStreamError
from devices.services.asked_at import ASKED_AT_EXPECTED, ASKED_AT_MOST_S, asked_moment
from devices.services.silences import REASON_MAX, SILENCE_PERMISSION, AlarmSeen, ward_silence, ward_silence_end
from devices.ward_payloads import silence_body
from protocol.payload_codec import payload_to_wire
from realtime.sio.auth import Principal
from realtime.sio.limits import ConnectionLimits, RequestRefused

WARD = re.compile(r"^[-a-zA-Z0-9_]{1,32}$")
# The alarms a screen may list as shown (`seen`): more than a ward's station ever shows at once.
SEEN_AT_MOST = 2000
SEEN_EXPECTED = f"Expected {{seen: [{{id, alerts, tier}}, ...]}}: the alarms shown, at most {SEEN_AT_MOST}"
SEEN_REQUIRED = (
    "This screen did not say which alarms it showed (a page older than the server): nothing silenced. Reload the "
    "page, then silence again"
)


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
            seen = _alarms_seen(data.get("seen"), limits)
            silence = ward_silence(ward=ward, user=user, seconds=seconds, reason=reason[:REASON_MAX], seen=seen)
    except PumpStreamError as refused:
        raise RequestRefused(refused.message, code=refused.code) from refused
    return payload_to_wire(silence_body(ward.code, silence, now=timezone.now()))


def _alarms_seen(seen: Any, limits: ConnectionLimits) -> frozenset[AlarmSeen]:
    """The request's `seen`: each alarm the screen had shown for at least the steady-press time (600 ms) when she
    pressed, as `{id, alerts, tier}`. The silence covers those only (`ward_silence`). A request without it (a page
    older than the contract's `seen`) is refused, not judged as if it had seen everything: its screen may have shown
    an alarm for no time at all. One that is not such a list is a malformed request."""
    if seen is None:
        raise RequestRefused(SEEN_REQUIRED, code="seen_required")
    if not isinstance(seen, list) or len(seen) > SEEN_AT_MOST:
        limits.strike(SEEN_EXPECTED)
    shown = [_alarm_seen(entry) for entry in seen]
    if None in shown:
        limits.strike(SEEN_EXPECTED)
    return frozenset(shown)


def _alarm_seen(entry: Any) -> AlarmSeen | None:
    """One `{id, alerts, tier}` (whole numbers: an id and an alert from 1, a tier from 0), or None."""
    if not isinstance(entry, dict) or set(entry) != {"id", "alerts", "tier"}:
        return None
    values = entry["id"], entry["alerts"], entry["tier"]
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return None
    alarm_id, alerts, tier = values
    return AlarmSeen(alarm_id, alerts, tier) if alarm_id >= 1 and alerts >= 1 and tier >= 0 else None


def _refuse_if_asked_long_ago(asked_at: Any, limits: ConnectionLimits, *, now: datetime) -> None:
    """Refuse a silence whose `askedAt` (when the person pressed, on the server's clock as the page knows it) is more
    than ASKED_AT_MOST_S ago: the station's button said "Silence the ward" then, and a screen that stopped being live
    since silences only itself; a request it sent into a stalled network must not silence every screen of the ward
    later, under that person's name. No `askedAt` (an integration's own client): not judged."""
    if asked_at is None:
        return
    moment = asked_moment(asked_at)
    if moment is None:
        limits.strike(ASKED_AT_EXPECTED)
    age_s = (now - moment).total_seconds()
    if age_s > ASKED_AT_MOST_S:
        raise RequestRefused(f"Silence asked {age_s:.0f} s ago, held up by the network: nothing silenced. Ask again")
